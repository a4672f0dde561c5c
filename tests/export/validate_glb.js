// node validate_glb.js FILE.glb: prints the Khronos glTF validator's issue counts and messages as JSON.
const validator = require("gltf-validator");
const fs = require("fs");
validator
  .validateBytes(new Uint8Array(fs.readFileSync(process.argv[2])))
  .then((report) => console.log(JSON.stringify(report.issues)))
  .catch((error) => {
    console.error(error);
    process.exit(1);
  });

// node screenshot.js PAGE.html SHOT.png: opens a results page in headless Chromium (offline: any
// request that is not file:, data: or blob: is blocked and reported), waits until <model-viewer>
// shows its model and the videos can play, screenshots the viewer and prints what it saw as JSON.
const { chromium } = require("playwright-core");

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    // As root in a container, without a GPU (SwiftShader draws WebGL) or a network.
    args: ["--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader", "--use-angle=swiftshader",
           "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const external = [];
  await page.route("**/*", (route) => {
    const url = route.request().url();
    if (/^(file|data|blob):/.test(url)) return route.continue();
    external.push(url);
    return route.abort();
  });
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.goto("file://" + process.argv[2]);
  await page.waitForFunction(() => {
    const viewer = document.querySelector("model-viewer");
    return viewer && viewer.loaded && viewer.modelIsVisible;
  }, null, { timeout: 90000 });
  await page.waitForFunction(() => [...document.querySelectorAll("video")].every((v) => v.readyState >= 2),
                             null, { timeout: 30000 });
  await page.waitForTimeout(1000);  // a few animation frames after the first draw
  const viewer = page.locator("model-viewer");
  await viewer.screenshot({ path: process.argv[3] });
  const videos = await page.$$eval("video", (all) => all.map((v) => ({ width: v.videoWidth, height: v.videoHeight })));
  const animations = await viewer.evaluate((v) => v.availableAnimations);
  console.log(JSON.stringify({ external, errors, videos, animations, box: await viewer.boundingBox() }));
  await browser.close();
})().catch((error) => {
  console.error(error);
  process.exit(1);
});

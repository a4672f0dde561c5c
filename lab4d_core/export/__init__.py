"""Take-away outputs of a trained model: meshes, motion and a skinned, animated glTF."""

"""Videos of a trained model: from the input cameras and from novel viewpoints."""

"""Frame sources: camera, stream, file or image folder, behind one small protocol."""

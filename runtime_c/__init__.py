"""runtime_c stage of onnx2mcu."""

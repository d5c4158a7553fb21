"""codegen stage of onnx2mcu."""

"""graph_opt stage of onnx2mcu."""

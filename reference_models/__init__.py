"""The MobileNetV4 reference models (placeholder until the builders land)."""

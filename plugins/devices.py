"""Built-in plugin: hardware profiles used to label and estimate latency.

The mobile devices are the ones of the MobileNetV4 paper's Table 6. Ridge points marked
'published' come from the paper's Appendix F (fitted there to measured latency); peak compute and
bandwidth are left empty until they are fitted or measured, and say so.
"""

from mnv4suite.api import DeviceProfile, hookimpl

PAPER = "MobileNetV4 paper (Qin et al. 2024)"


@hookimpl
def register_devices():
    return [
        DeviceProfile("host-cpu", "This machine's CPU", "cpu", source="measured on demand (GEMM and copy micro-benchmarks)"),
        DeviceProfile("pixel6_cpu", "Google Pixel 6 CPU (TFLite int8, XNNPACK)", "cpu", ridge_point=31.2,
                      source=f"ridge point published: {PAPER}, Appendix F"),
        DeviceProfile("s23_cpu", "Samsung Galaxy S23 CPU (TFLite int8, XNNPACK)", "cpu", ridge_point=39.7,
                      source=f"ridge point published: {PAPER}, Appendix F"),
        DeviceProfile("pixel4_hexagon", "Google Pixel 4 Hexagon DSP (TFLite int8)", "dsp", ridge_point=347.3,
                      source=f"ridge point published: {PAPER}, Appendix F"),
        DeviceProfile("pixel8_edgetpu", "Google Pixel 8 EdgeTPU (TFLite int8)", "edgetpu", ridge_point=433.8,
                      source=f"ridge point published: {PAPER}, Appendix F"),
        DeviceProfile("pixel7_gpu", "Google Pixel 7 GPU, Mali (TFLite fp16)", "gpu",
                      source=f"latencies published in {PAPER}, Table 6; profile not yet fitted"),
        DeviceProfile("s23_gpu", "Samsung Galaxy S23 GPU, Adreno (TFLite fp16)", "gpu",
                      source=f"latencies published in {PAPER}, Table 6; profile not yet fitted"),
        DeviceProfile("iphone13_ane", "Apple iPhone 13 Neural Engine (Core ML fp16)", "npu",
                      source=f"latencies published in {PAPER}, Table 6; profile not yet fitted"),
    ]

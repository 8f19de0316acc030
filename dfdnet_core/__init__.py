"""dfdnet_core: depth from defocus without ROS.

Optics, the thin-lens focal-stack renderer, data sets, the DfDNet model, training, evaluation, export,
depth estimator back ends, lens drivers and sweep planning. Nothing here imports ``rclpy``.

Units: lengths in metres (``_m``), optical power in dioptres (``_diopt``), image sizes in pixels (``_px``),
times in integer nanoseconds (``_ns``). Depth images are float32 metres with NaN where there is no depth (REP 118).
"""

__version__ = "0.1.0"

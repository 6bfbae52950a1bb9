"""The box's live media: capture (``sources``), encoding (``encoder``), aiortc tracks
(``tracks``) and the crash-safe session recording (``recorder``), configured by
``config.MediaConfig``."""

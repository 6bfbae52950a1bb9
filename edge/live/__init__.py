"""Live reception on the box: the signaling client (``client``), the aiortc call through the
hub relay (``call``), the session recordings (``recordings``) and the state machine the kiosk
drives (``service``)."""

"""Video: reading and writing clips (PyAV), optical flow between neighbouring frames, warping and the flow's
reliability masks. The optional extra ``video`` (``pip install 'nst-lightning[video]'``) provides PyAV and
OpenCV; nothing here imports them until a clip is read or a flow computed."""

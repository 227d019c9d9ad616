"""Parameter sweeps: spec, point names, batch planning, the manifest, running (local or Ray) and the contact sheet."""

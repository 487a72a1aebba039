"""An example vendor plugin for mnv4suite (see plugin.py for the part mnv4suite loads)."""

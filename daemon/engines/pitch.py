"""What both engines share about voice pitch: the range (Hz) they analyse with Praat."""

MIN_PITCH, MAX_PITCH = 75.0, 600.0

"""The generated face + speech corpus: mer-gym's embedded default, grounded in published facts.

    faces.py    parametric FACS face renderer (grayscale camera frames)
    speech.py   source-filter speech synthesizer (16 kHz mono)
    persons.py  persons: face identity + voice + facial and vocal expressivity
    writer.py   presets, corpus writer (PNG + WAV + parquet manifest) and summary
"""

"""Reports: streamed exports, competency frameworks and the competency matrix (issue 16).

Layer 6 (beside ``lti``): read-only over the other packages' tables. It owns only the
competency frameworks (framework -> competencies -> evidencing modules), the precomputed
holdings derived from them (a cache the ``reports.holdings`` job rebuilds at will) and the
records of exports run in the background.
"""

"""LTI 1.3: registrations, tool keys, OIDC login and launch (pylti1p3 is used only in here).

The rest of the application sees plain launch data: ``flask.session["lti"]`` (a dict) and
the models in :mod:`lms_plugin.lti.models`.
"""

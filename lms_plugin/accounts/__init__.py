"""People, organisations, roles, local login and the audit log."""

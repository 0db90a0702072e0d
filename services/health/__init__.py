"""Health service: health and dental examinations of placed children (that they happened, never their content)."""

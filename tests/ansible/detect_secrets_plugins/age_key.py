"""detect-secrets plugin: age private keys (detect-secrets 1.5 has no detector for them)."""

import re

from detect_secrets.plugins.base import RegexBasedDetector


class AgeSecretKeyDetector(RegexBasedDetector):
    """Scans for age (and SOPS age) private keys."""

    secret_type = "age Secret Key"
    denylist = (re.compile(r"AGE-SECRET-KEY-1[0-9A-Z]{58}"),)

"""The master HMAC key of job callbacks; only the API Lambda reads it.

The API derives from it one token per job attempt (``mpr.callback.attempt_token``), hands that
token to the execution, and checks each callback's signature against the same derivation.
"""

from __future__ import annotations

from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from stacks import nag
from stacks.config import MprConfig

# 64 letters and digits carry about 380 bits, more than the 256 bits HMAC-SHA256 can use.
HMAC_KEY_LENGTH = 64


class CallbackSecret(Construct):
    """A generated secret string, cached by the API Lambda for at most five minutes.

    Rotation is manual on purpose (see ``_suppress_rotation``): put a new value when no job is
    PROCESSING (or accept that running jobs fail and retry them); the API picks it up within
    its cache age.
    """

    secret: secretsmanager.Secret

    def __init__(self, scope: Construct, construct_id: str, *, config: MprConfig) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self.secret = self._build_secret()
        self._suppress_rotation()

    def _build_secret(self) -> secretsmanager.Secret:
        return secretsmanager.Secret(
            self,
            "Secret",
            description="Master HMAC-SHA256 key of MPR job callbacks (read by the API Lambda only)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=HMAC_KEY_LENGTH,
                # Punctuation would need escaping in headers and shell tests; length is enough.
                exclude_punctuation=True,
            ),
            removal_policy=self._config.removal_policy,
        )

    def _suppress_rotation(self) -> None:
        nag.suppress(
            self.secret,
            "AwsSolutions-SMG4",
            "Master key of job callbacks: running executions carry tokens derived from the current "
            "key, so a scheduled rotation would make their callbacks fail verification and their "
            "jobs fail. Rotation is a manual, documented step taken when no job is running.",
        )

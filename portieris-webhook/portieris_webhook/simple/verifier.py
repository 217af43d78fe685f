"""The `simple` verifier plugin: policy.simple.requirements.

Requirements are ANDed. `reject` denies, `insecureAcceptAnything` accepts
without pinning a digest. `signedBy` needs GPG signature verification, which
is not available in this build, so it denies (fail closed).
"""

from __future__ import annotations

from portieris_webhook.errors import VerificationError
from portieris_webhook.policy.model import INSECURE_ACCEPT_ANYTHING, REJECT, SIGNED_BY, Policy
from portieris_webhook.verifiers import ImageCheck, Verdict, Verifier


class SimpleVerifier(Verifier):
    name = "simple"

    def applies(self, policy: Policy) -> bool:
        return bool(policy.simple.requirements)

    async def verify(self, check: ImageCheck) -> Verdict:
        for index, requirement in enumerate(check.policy.simple.requirements):
            if requirement.type == REJECT:
                raise VerificationError(f"simple signing requirement {index + 1} is 'reject'")
            if requirement.type == SIGNED_BY:
                raise VerificationError(
                    f"simple signing requirement {index + 1} is 'signedBy', but signature "
                    "verification is not available in this build"
                )
            if requirement.type != INSECURE_ACCEPT_ANYTHING:
                raise VerificationError(f"unknown simple signing requirement {requirement.type!r}")
        return Verdict(self.name, None, "insecureAcceptAnything")

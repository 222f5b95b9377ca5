"""Device attestation: Apple App Attest and Google Play Integrity. A verdict is a trust signal, never a crash."""

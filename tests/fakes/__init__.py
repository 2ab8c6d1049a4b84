"""The test doubles every layer of tests shares (unit, integration, e2e and the benchmark's
smoke test): one fake clock, one Lambda context, one in-memory token store, the fake Cognito
client and Cognito's token endpoint stubbed over HTTP, the origin-verify secret source, the
token proxy function's environment, and fault injection into moto's AWS calls.

Tests import their doubles from here, never from another test module."""

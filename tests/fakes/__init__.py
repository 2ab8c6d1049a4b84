"""The test doubles the tests share, in one place: one fake clock, one Lambda context, the
in-memory token store, the fake Cognito client, Cognito's token endpoint faked over HTTP on
loopback (on an HTTP endpoint the Cognito client's own tests script too), the
origin-verify secret source, the token proxy function's test environment, a function that records
the events the local front ends build, and fault injection into moto's AWS calls.

Tests import their doubles from here, never from another test module: an integration test never
depends on a unit test's module, nor a unit test on an integration one."""

using Legate.Testing;

namespace Legate.Authz.Tests;

public sealed class AuthzProcessTests()
    : ServiceProcessTests("authz", "legate-authz", "authz", "envoy.service.auth.v3.Authorization");

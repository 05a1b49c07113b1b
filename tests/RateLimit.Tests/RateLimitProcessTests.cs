using Legate.Testing;

namespace Legate.RateLimit.Tests;

public sealed class RateLimitProcessTests()
    : ServiceProcessTests("ratelimit", "legate-ratelimit", "ratelimit", "envoy.service.ratelimit.v3.RateLimitService");

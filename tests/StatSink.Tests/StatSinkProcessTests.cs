using Legate.Testing;

namespace Legate.StatSink.Tests;

public sealed class StatSinkProcessTests()
    : ServiceProcessTests("statsink", "legate-statsink", "statsink", "envoy.service.metrics.v3.MetricsService");

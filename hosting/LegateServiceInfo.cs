namespace Legate.Hosting;

/// <summary>Which Legate service this process is: its short name (<c>authz</c>, <c>ratelimit</c>, <c>statsink</c>).</summary>
public sealed record LegateServiceInfo(string Name);

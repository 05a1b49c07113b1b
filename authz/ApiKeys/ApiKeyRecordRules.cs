using System.Text.RegularExpressions;

namespace Legate.Authz.ApiKeys;

/// <summary>
/// What a key record's tenant, client, plan and scopes may be: one rule for the keys file, Redis records written by
/// <c>legate keys</c>, and that command. They become identity header values and rate-limit descriptor values, so no
/// spaces, control characters (a trailing newline included) or commas (header lists).
/// </summary>
public static partial class ApiKeyRecordRules
{
    /// <summary>For tenant names, as in the policy file.</summary>
    public const string NameRule = "[a-z0-9][a-z0-9._-]* (at most 64 characters)";

    /// <summary>
    /// A plan goes only into dynamic metadata, and a tenant's plan in the policy may be any text: as free here. A JWT's
    /// plan claim (<c>jwt_providers.P.plan_claim</c>) is held to the same rule.
    /// </summary>
    public const string PlanRule = "1 to 64 characters, no control characters";

    public const string ClientRule = "1 to 128 characters of A-Z a-z 0-9 . _ : @ / -";

    public const string ScopeRule = "1 to 128 printable ASCII characters without spaces or commas";

    public static bool IsName(string value) => NamePattern().IsMatch(value);

    // char.IsControl's ranges (C0, DEL and C1), searched without enumerating the string: a JWT's plan claim is checked
    // on every token-cache miss.
    public static bool IsPlan(string value) =>
        value.Length is > 0 and <= 64 && value.AsSpan().IndexOfAnyInRange('\u0000', '\u001F') < 0 && value.AsSpan().IndexOfAnyInRange('\u007F', '\u009F') < 0;

    public static bool IsClientId(string value) => ClientPattern().IsMatch(value);

    public static bool IsScope(string value) => ScopePattern().IsMatch(value);

    /// <summary>Whether a whole record holds to these rules (a Redis record, written by hand or by an older tool).</summary>
    public static bool Holds(ApiKeyRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        return IsName(record.Tenant) && IsClientId(record.ClientId) && (record.Plan is null || IsPlan(record.Plan)) && record.Scopes.All(IsScope);
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9._-]{0,63}\\z")]
    private static partial Regex NamePattern();

    [GeneratedRegex("^[A-Za-z0-9._:@/-]{1,128}\\z")]
    private static partial Regex ClientPattern();

    [GeneratedRegex("^[\\x21-\\x2B\\x2D-\\x7E]{1,128}\\z")]
    private static partial Regex ScopePattern();
}

using System.Globalization;
using System.Text;
using Legate.Authz.Jwt;
using static Legate.Authz.Tests.Jwt.JwtTestKit;

namespace Legate.Authz.Tests.Jwt;

/// <summary>
/// The payload reading alone (after the signature): every payload must get the same answer as the
/// <see cref="ReferencePayloadReader"/> (the JsonDocument reading), the same failure or the same identity.
/// </summary>
public sealed class JwtPayloadTests : JwtValidatorTestBase
{
    private static readonly long T = Unix(Now);

    private JwtProvider LimitedProvider { get; }

    /// <summary>Reads the plan from a top-level <c>plan</c> claim.</summary>
    private JwtProvider PlanProvider { get; }

    /// <summary>Reads the plan from <c>app_metadata.plan</c>.</summary>
    private JwtProvider NestedPlanProvider { get; }

    public JwtPayloadTests()
    {
        LimitedProvider = Provider(Options(DefaultJwks) with { MaxLifetime = TimeSpan.FromHours(1) }, Time);
        PlanProvider = Provider(Options(DefaultJwks) with { PlanClaim = ["plan"] }, Time);
        NestedPlanProvider = Provider(Options(DefaultJwks) with { PlanClaim = ["app_metadata", "plan"] }, Time);
    }

    public static TheoryData<string> Payloads => new(
    [
        Payload(Now),
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}}}""",
        // Escaped member names are the names they spell: "\u0069ss" is iss, and a second iss is a duplicate.
        $$"""{"\u0069ss":"{{Issuer}}","aud":"{{Audience}}","\u0065xp":{{T + 60}},"s\u0075b":"bob"}""",
        $$"""{"iss":"{{Issuer}}","\u0069ss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}}}""",
        $$"""{"iss":"https:\/\/issuer.example.com","aud":"orders\u002dapi","exp":{{T + 60}},"sub":"\u00e9"}""",
        // Duplicates of any member, whatever its value, and after many others.
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"x":{},"x":[]}""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"x":null,"x":null}""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},{{Members(200)}},"m7":1}""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},{{Members(200)}},"m199":1}""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},{{Members(200)}},"m200":1}""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},{{Members(31)}},"exp":1}""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"o":{"a":1,"a":2},"z":0}""",
        // Nesting up to the depth limit, and one past it.
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"d":{{new string('[', 31)}}{{new string(']', 31)}}}""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"d":{{new string('[', 32)}}{{new string(']', 32)}}}""",
        // Times: fractions truncate; exponents, huge, negative, infinite, strings, missing.
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}}.9,"iat":{{T}}.5,"nbf":{{T}}e0}""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":1e999}""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":99999999999999999999}""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":2e15}""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":253402300800}""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":-1}""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":"{{T + 60}}"}""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"nbf":null}""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"iat":true}""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}"}""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 7200}},"iat":{{T}}}""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T - 3600}},"nbf":"x"}""",
        // Issuer and audience forms.
        $$"""{"iss":"{{Issuer}}/","aud":"{{Audience}}","exp":{{T + 60}}}""",
        $$"""{"iss":1,"aud":"{{Audience}}","exp":{{T + 60}}}""",
        $$"""{"iss":"{{Issuer}}","aud":["other","{{Audience}}","admin-api"],"exp":{{T + 60}}}""",
        $$"""{"iss":"{{Issuer}}","aud":[1,{"a":"{{Audience}}"},["{{Audience}}"],"admin-api"],"exp":{{T + 60}}}""",
        $$"""{"iss":"{{Issuer}}","aud":[],"exp":{{T + 60}}}""",
        $$"""{"iss":"{{Issuer}}","aud":{"aud":"{{Audience}}"},"exp":{{T + 60}}}""",
        $$"""{"iss":"{{Issuer}}","exp":{{T + 60}}}""",
        // Scopes: scope (a string) wins over scp (a string or an array of strings).
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"scope":"  a  b c ","scp":["d"]}""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"scope":["a"],"scp":["d",1,"e",null,["f"]]}""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"scp":"x  y"}""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"scp":{"a":"b"},"z":0}""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"scope":""}""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"scope":"a\tb"}""",
        // Claims kept for headers: strings, numbers as written, booleans; not null, arrays or objects.
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"n":1.50E+3,"t":true,"f":false,"z":null,"a":[1],"o":{},"e":"","sub":""}""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"sub":42,"azp":"app","client_id":"c"}""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"":"empty name","email":"a\"b\\c\/d\u0000"}""",
        // Not an object, or not JSON.
        "[]", "1", "\"x\"", "null", "", " ", "{", "{}", "{} {}", "{}x", "{\"a\":1,}", "{/*c*/}", "{'a':1}", "{\"a\" 1}",
        $$"""  {"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}}}  """,
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"s":"\ud800"}""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"s":"\ud83d\ude00","\ud800":1}""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"s":"\x"}""",
        // Plan claims, top-level and nested: present, missing, of another type, against the plan rule, named twice.
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"plan":"gold","app_metadata":{"plan":"silver"} }""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"plan":5,"app_metadata":{"plan":true} }""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"plan":null,"app_metadata":{"plan":null} }""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"plan":["gold"],"app_metadata":{"plan":{"name":"gold"} } }""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"plan":"","app_metadata":{"plan":"{{new string('g', 65)}}"} }""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"plan":"{{new string('g', 64)}}","app_metadata":{"plan":"gold\n"} }""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"plan":"go\u0007ld","app_metadata":{"x":{"plan":"gold"},"plan":"gold plan \u00e9"} }""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"app_metadata":{"plan":"gold","plan":"free"} }""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"app_metadata":{"p\u006can":"gold","other":[{"plan":1}]} }""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"app_metadata":{"other":1} }""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"app_metadata":"gold"}""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"app_metadata":[{"plan":"gold"}]}""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"app_metadata":{"plan":"\ud800"} }""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"app_metadata":{"plan":"gold"},"app_metadata":{} }""",
        $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T - 3600}},"plan":"gold"}""",
    ]);

    [Theory]
    [MemberData(nameof(Payloads))]
    public void Payload_AnswersAsTheReferenceReading(string json)
    {
        _ = AssertSame(Encoding.UTF8.GetBytes(json));
    }

    [Fact]
    public void Payload_InvalidUtf8_AnswersAsTheReferenceReading()
    {
        foreach (var exp in new[] { T + 60, T - 3600 })
        {
            var start = $$"""{"iss":"{{Issuer}}","exp":{{exp}}""";
            var aud = $",\"aud\":\"{Audience}\"";
            _ = AssertSame(Bytes(start + aud, ",\"s\":\"", new byte[] { 0xFF }, "\"}"));
            _ = AssertSame(Bytes(start + aud, ",\"", new byte[] { 0xC3, 0x28 }, "\":1}"));
            _ = AssertSame(Bytes(start + aud, ",\"o\":{\"s\":\"", new byte[] { 0xED, 0xA0, 0x80 }, "\"}}"));
            // Inside aud and scp arrays a bad element only counts once the reading gets to it.
            _ = AssertSame(Bytes(start, ",\"aud\":[\"x\",\"", new byte[] { 0xFF }, $"\",\"{Audience}\"]}}"));
            _ = AssertSame(Bytes(start, $",\"aud\":[\"{Audience}\",\"", new byte[] { 0xFF }, "\"]}"));
            _ = AssertSame(Bytes(start, ",\"aud\":[\"\\ud800\"]}"));
            _ = AssertSame(Bytes(start, $",\"aud\":[\"{Audience}\",\"\\ud800\"]}}"));
            _ = AssertSame(Bytes(start + aud, ",\"scp\":[\"a\",\"", new byte[] { 0xFF }, "\"]}"));
            _ = AssertSame(Bytes(start + aud, ",\"scope\":\"a\",\"scp\":[\"a\",\"", new byte[] { 0xFF }, "\"]}"));
            _ = AssertSame(Bytes(start + aud, ",\"scp\":[\"a\",\"\\udc00\"]}"));
            _ = AssertSame(Bytes(start + aud, ",\"scp\":\"a\",\"x\":[\"", new byte[] { 0xFF }, "\"]}"));
        }
        _ = AssertSame([0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes($$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}}}""")]);
    }

    [Fact]
    public void Payload_EscapedNames_AreTheNamesTheySpell()
    {
        var result = Read($$"""{"\u0069ss":"{{Issuer}}","aud":"{{Audience}}","ex\u0070":{{T + 60}},"s\u0075b":"bob","\u0073cope":"a b"}""");
        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal("bob", result.Identity!.Subject);
        Assert.Equal(["a", "b"], result.Identity.Scopes);
        Assert.Equal("bob", result.Identity.Claims["sub"]);
        Assert.Equal(JwtFailureReason.Malformed, Read($$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"s\u0075b":"a","sub":"b"}""").Failure);
    }

    [Fact]
    public void Payload_DuplicateMembers_AreMalformedWhereverTheyAre()
    {
        foreach (var count in new[] { 1, 15, 16, 17, 31, 32, 33, 100, 500 })
        {
            var start = $$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},{{Members(count)}}""";
            Assert.True(Read(start + "}").Succeeded, count.ToString(CultureInfo.InvariantCulture));
            Assert.Equal(JwtFailureReason.Malformed, Read(start + ",\"m0\":{}}").Failure);
            Assert.Equal(JwtFailureReason.Malformed, Read(start + $",\"m{count - 1}\":null}}").Failure);
            Assert.Equal(JwtFailureReason.Malformed, Read(start + ",\"exp\":1}").Failure);
        }
    }

    [Fact]
    public void Payload_Claims_KeepScalarsAsText()
    {
        var result = Read($$"""{"iss":"{{Issuer}}","aud":["x","{{Audience}}"],"exp":{{T + 60}},"n":1.50E+3,"t":true,"f":false,"z":null,"a":[1],"o":{},"sub":7}""");
        Assert.True(result.Succeeded, result.ToString());
        var claims = result.Identity!.Claims;
        Assert.Equal(["iss", "exp", "n", "t", "f", "sub"], claims.Keys);
        Assert.Equal("1.50E+3", claims["n"]);
        Assert.Equal("true", claims["t"]);
        Assert.Equal("false", claims["f"]);
        Assert.Equal("7", result.Identity.Subject);
        Assert.False(claims.ContainsKey("z"));
        Assert.False(claims.TryGetValue("aud", out _));
        Assert.Throws<KeyNotFoundException>(() => claims["a"]);
        Assert.Equal(Audience, result.Identity.Audience);
    }

    [Fact]
    public void Payload_PlanClaim_IsAStringHoldingToThePlanRule_ElseInvalid_AndAbsentIsNoPlan()
    {
        (string? Plan, bool Invalid) Read(JwtProvider provider, string members)
        {
            var result = Validator.ReadPayload(provider, B64(Encoding.UTF8.GetBytes($$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}}{{members}}}""")));
            Assert.True(result.Succeeded, result.ToString());
            return (result.Identity!.Plan, result.Identity.PlanInvalid);
        }

        Assert.Equal(("gold", false), Read(PlanProvider, ""","plan":"gold" """));
        Assert.Equal(("gold plan é", false), Read(PlanProvider, ""","plan":"gold plan é" """));
        Assert.Equal((new string('g', 64), false), Read(PlanProvider, $$""","plan":"{{new string('g', 64)}}" """));
        Assert.Equal((null, false), Read(PlanProvider, ""));
        Assert.Equal((null, false), Read(PlanProvider, ""","app_metadata":{"plan":"gold"}"""));
        foreach (var bad in new[] { "5", "true", "null", "[\"gold\"]", "{\"name\":\"gold\"}", "\"\"", $"\"{new string('g', 65)}\"", "\"gold\\n\"", "\"go\\u007fld\"" })
            Assert.Equal((null, true), Read(PlanProvider, ",\"plan\":" + bad));

        Assert.Equal(("gold", false), Read(NestedPlanProvider, ""","app_metadata":{"x":{"plan":"free"},"p\u006can":"gold"},"plan":"free" """));
        Assert.Equal((null, false), Read(NestedPlanProvider, ""","plan":"gold" """));
        Assert.Equal((null, false), Read(NestedPlanProvider, ""","app_metadata":{"tier":"gold"}"""));
        Assert.Equal((null, true), Read(NestedPlanProvider, ""","app_metadata":"gold" """));
        Assert.Equal((null, true), Read(NestedPlanProvider, ""","app_metadata":null"""));
        Assert.Equal((null, true), Read(NestedPlanProvider, ""","app_metadata":{"plan":1}"""));
        Assert.Equal((null, true), Read(NestedPlanProvider, ""","app_metadata":{"plan":"gold","plan":"gold"}"""));
        Assert.Equal((null, true), Read(NestedPlanProvider, ""","app_metadata":{"plan":"\ud800"}"""));

        // The plan is read only where the provider says: without a plan claim, a token's "plan" is just a claim.
        var plain = Validator.ReadPayload(DefaultProvider, B64(Encoding.UTF8.GetBytes($$"""{"iss":"{{Issuer}}","aud":"{{Audience}}","exp":{{T + 60}},"plan":5}""")));
        Assert.True(plain.Succeeded);
        Assert.Equal((null, false), (plain.Identity!.Plan, plain.Identity.PlanInvalid));
    }

    [Fact]
    public void Payload_RandomPayloads_AnswerAsTheReferenceReading()
    {
        var random = new Random(4);
        var outcomes = new Dictionary<JwtFailureReason, int>();
        var plans = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < 4000; i++)
        {
            var payload = RandomPayload(random);
            var failure = AssertSame(payload);
            outcomes[failure] = outcomes.GetValueOrDefault(failure) + 1;
            if (Validator.ReadPayload(NestedPlanProvider, B64(payload)).Identity is { } identity)
            {
                var plan = identity.PlanInvalid ? "invalid" : identity.Plan is null ? "absent" : "found";
                plans[plan] = plans.GetValueOrDefault(plan) + 1;
            }
        }
        // Nested plan claims found, missing and refused, not only one of them (of the few hundred valid payloads).
        foreach (var plan in new[] { "found", "absent", "invalid" })
            Assert.True(plans.GetValueOrDefault(plan) >= 20, $"{plan}: {string.Join(", ", plans)}");
        // The generator must reach every answer, not only "malformed".
        foreach (var reason in new[] { JwtFailureReason.None, JwtFailureReason.Malformed, JwtFailureReason.Expired, JwtFailureReason.NotYetValid,
            JwtFailureReason.IssuedInFuture, JwtFailureReason.LifetimeTooLong, JwtFailureReason.WrongIssuer, JwtFailureReason.WrongAudience })
            Assert.True(outcomes.GetValueOrDefault(reason) >= 40, $"{reason}: {string.Join(", ", outcomes)}");
    }

    private JwtResult Read(string json) => Validator.ReadPayload(DefaultProvider, B64(Encoding.UTF8.GetBytes(json)));

    /// <returns>The answer with a maximum lifetime.</returns>
    private JwtFailureReason AssertSame(byte[] json)
    {
        var encoded = B64(json);
        foreach (var provider in new[] { DefaultProvider, LimitedProvider, PlanProvider, NestedPlanProvider })
        {
            var expected = ReferencePayloadReader.Read(provider, Now, encoded);
            var actual = Validator.ReadPayload(provider, encoded);
            var text = Encoding.UTF8.GetString(json);
            Assert.True(expected.Failure == actual.Failure, $"{text}: expected {expected}, got {actual}");
            if (!expected.Succeeded)
                continue;
            var (e, a) = (expected.Identity!, actual.Identity!);
            Assert.Equal(e.Subject, a.Subject);
            Assert.Equal(e.Issuer, a.Issuer);
            Assert.Equal(e.Audience, a.Audience);
            Assert.Equal(e.ExpiresAt, a.ExpiresAt);
            Assert.Equal(e.Scopes, a.Scopes);
            Assert.Equal(e.Claims.ToList(), a.Claims.ToList());
            Assert.Equal(e.Claims.Count, a.Claims.Count);
            foreach (var (name, value) in e.Claims)
                Assert.Equal(value, a.Claims[name]);
            Assert.True(e.Plan == a.Plan && e.PlanInvalid == a.PlanInvalid,
                $"{text} ({provider.Options.PlanClaim?.Count ?? 0}-member plan claim): expected plan {e.Plan} invalid {e.PlanInvalid}, got {a.Plan} invalid {a.PlanInvalid}");
        }
        return ReferencePayloadReader.Read(LimitedProvider, Now, encoded).Failure;
    }

    private static string Members(int count) => string.Join(",", Enumerable.Range(0, count).Select(i => $"\"m{i}\":{i}"));

    private static byte[] Bytes(string start, params object[] parts)
    {
        var bytes = new List<byte>(Encoding.UTF8.GetBytes(start));
        foreach (var part in parts)
            bytes.AddRange(part is string s ? Encoding.UTF8.GetBytes(s) : (byte[])part);
        return [.. bytes];
    }

    private static readonly string[] Names =
    [
        "iss", "aud", "exp", "nbf", "iat", "sub", "scope", "scp", "azp", "client_id", "email", "x", "", "plan", "app_metadata",
        "\\u0069ss", "ex\\u0070", "\\u0073cope", "s\\u0075b", "\u00e9", "a\\\"b",
    ];

    /// <summary>Objects of claim-like members with values of every kind, a few broken on purpose.</summary>
    private static byte[] RandomPayload(Random random)
    {
        var bytes = new List<byte>();
        void Add(string text) => bytes.AddRange(Encoding.UTF8.GetBytes(text));
        switch (random.Next(60))
        {
            case 0: Add("[" + RandomValue(random, "x", 0) + "]"); return [.. bytes];
            case 1: Add(RandomValue(random, "x", 0)); return [.. bytes];
            case 2: bytes.AddRange(new byte[] { 0xEF, 0xBB, 0xBF }); break;
        }
        var names = new List<string>();
        foreach (var required in new[] { "iss", "aud", "exp" })
        {
            if (random.Next(15) != 0)
                names.Add(required);
        }
        foreach (var optional in new[] { "nbf", "iat", "sub", "app_metadata" })
        {
            if (random.Next(3) == 0)
                names.Add(optional);
        }
        for (var i = random.Next(8); i > 0; i--)
        {
            var name = Names[random.Next(Names.Length)];
            names.Add(names.Contains(name) && random.Next(8) != 0 ? "c" + i.ToString(CultureInfo.InvariantCulture) : name);
        }
        names = [.. names.OrderBy(_ => random.Next())];

        Add("{");
        for (var i = 0; i < names.Count; i++)
        {
            if (i > 0)
                Add(",");
            if (random.Next(150) == 0)
                bytes.AddRange(new byte[] { (byte)'"', 0xFF, (byte)'"' });
            else
                Add("\"" + names[i] + "\"");
            Add(":");
            if (random.Next(150) == 0)
            {
                bytes.AddRange(new byte[] { (byte)'"', (byte)'a', 0xC3, (byte)'"' });
                continue;
            }
            var plain = names[i].Replace("\\u0069", "i", StringComparison.Ordinal).Replace("\\u0070", "p", StringComparison.Ordinal)
                .Replace("\\u0073", "s", StringComparison.Ordinal).Replace("\\u0075", "u", StringComparison.Ordinal);
            Add(RandomValue(random, plain, 0));
        }
        Add(random.Next(100) switch { 0 => "", 1 => ",}", 2 => "}x", 3 => "} ", _ => "}" });
        return [.. bytes];
    }

    private static string RandomValue(Random random, string name, int depth)
    {
        if (random.Next(16) != 0)
        {
            switch (name)
            {
                case "iss": return random.Next(8) == 0 ? "\"https:\\/\\/issuer.example.com\"" : random.Next(8) == 0 ? "\"other\"" : $"\"{Issuer}\"";
                case "aud":
                    return random.Next(3) switch
                    {
                        0 => $"\"{Audience}\"",
                        1 => "[" + string.Join(",", Enumerable.Range(0, random.Next(4)).Select(_ => RandomAudience(random, depth))) + "]",
                        _ => "\"admin-api\"",
                    };
                case "exp" or "nbf" or "iat": return RandomTime(random, name);
                case "plan": return RandomPlan(random, depth);
                case "app_metadata":
                    // An object holding a plan (now and then twice, or under another name), or something else.
                    return random.Next(6) == 0 ? RandomValue(random, "x", depth + 1)
                        : "{" + string.Join(",", Enumerable.Range(0, 1 + random.Next(2)).Select(i => (random.Next(4) switch
                        {
                            0 => "\"x\"",
                            1 => "\"p\\u006can\"",
                            _ => "\"plan\"",
                        }) + ":" + RandomPlan(random, depth + 1))) + "}";
                case "scope" or "scp":
                    return random.Next(2) == 0
                        ? "\"" + string.Join(random.Next(3) == 0 ? "  " : " ", Enumerable.Range(0, random.Next(4)).Select(i => "s" + i.ToString(CultureInfo.InvariantCulture))) + "\""
                        : "[" + string.Join(",", Enumerable.Range(0, random.Next(4)).Select(_ => RandomScalar(random))) + "]";
            }
        }
        if (depth > 34)
            return "1";
        return random.Next(12) switch
        {
            0 => "{" + (random.Next(2) == 0 ? "" : "\"a\":" + RandomValue(random, "x", depth + 1)) + "}",
            1 => "[" + RandomValue(random, "x", depth + 1) + "]",
            2 when random.Next(4) == 0 => new string('[', 30 + random.Next(5)) + new string(']', 30 + random.Next(5)),
            _ => RandomScalar(random),
        };
    }

    /// <summary>A plan value: mostly a string (a good plan, empty, too long, with a control character or a bad escape), else any value.</summary>
    private static string RandomPlan(Random random, int depth) => random.Next(10) switch
    {
        0 => "\"\"",
        1 => $"\"{new string('p', 64 + random.Next(2))}\"",
        2 => "\"go\\u0000ld\"",
        3 => "\"\\ud800\"",
        4 => RandomValue(random, "x", depth + 1),
        _ => "\"gold\"",
    };

    private static string RandomAudience(Random random, int depth) => random.Next(8) switch
    {
        0 or 1 => $"\"{Audience}\"",
        2 => "\"admin-api\"",
        3 => "\"orders\\u002dapi\"",
        4 when random.Next(3) == 0 => "\"\\ud800\"",
        5 => RandomValue(random, "x", depth + 1),
        _ => "\"other\"",
    };

    private static string RandomTime(Random random, string name)
    {
        int[] offsets = name == "exp" ? [-7200, -59, 30, 600, 3600, 7200] : [-3600, 0, 30, 90, 7200];
        var t = (T + offsets[random.Next(offsets.Length)]).ToString(CultureInfo.InvariantCulture);
        return random.Next(24) switch
        {
            0 => t + ".75",
            1 => t + "e0",
            2 => "1e999",
            3 => "-1e999",
            4 => "\"" + t + "\"",
            5 => "99999999999999999999",
            6 => "null",
            7 => "2e15",
            8 => "-62135596801",
            _ => t,
        };
    }

    private static string RandomScalar(Random random) => random.Next(24) switch
    {
        0 => "true",
        1 => "false",
        2 => "null",
        3 => "-0",
        4 => "1.5E+3",
        5 => "12345678901234567890123",
        6 => "\"\"",
        7 => "\"a\\nb\"",
        8 => "\"\\ud83d\\ude00\"",
        9 when random.Next(4) == 0 => "\"\\udc00\"",
        10 => "\"" + new string('v', random.Next(40)) + "\"",
        11 when random.Next(4) == 0 => "01",
        12 => "\"\\u00e9 \u00e9\"",
        _ => random.Next(1000).ToString(CultureInfo.InvariantCulture),
    };
}

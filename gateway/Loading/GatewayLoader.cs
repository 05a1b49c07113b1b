using System.Globalization;
using System.Text.RegularExpressions;
using Legate.Authz.ApiKeys;
using Legate.Authz.Jwt;
using Legate.Gateway.Model;
using Legate.Hosting.Rules;
using YamlDotNet.RepresentationModel;
using static Legate.Hosting.Rules.YamlNodes;

namespace Legate.Gateway.Loading;

/// <summary>
/// Reads and checks a gateway file. Every problem is collected (unknown fields, bad values, dangling backend, tenant,
/// policy and provider names, conflicting routes, impossible quotas) and reported together, each with file:line:column,
/// the field and a hint; only a file without errors becomes a <see cref="GatewayConfig"/>.
/// </summary>
internal static partial class GatewayLoader
{
    public const string DefaultPolicyName = "default";

    private static readonly string[] KeySources = ["jwks_uri", "oidc_discovery_uri", "jwks", "jwks_file"];
    private static readonly string[] Credentials = ["jwt", "api_key", "none"];

    // Conditions that act only on what Envoy's retry policy lists beside them (retriable_status_codes,
    // retriable_headers), which the gateway file has no field for: alone, Envoy accepts them and never retries.
    private static readonly Dictionary<string, string> ListedConditions = new(StringComparer.Ordinal)
    {
        ["retriable-status-codes"] = "status codes",
        ["retriable-headers"] = "response headers",
    };

    private static readonly string[] RetryConditions =
        ["5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "envoy-ratelimited", "retriable-4xx", "refused-stream",
         "retriable-status-codes", "retriable-headers", "http3-post-connect-failure"];

    /// <summary>Loads a gateway file from disk.</summary>
    /// <exception cref="GatewayFileException">The file is missing or has errors (all of them).</exception>
    public static GatewayConfig Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The hosting's wording for files that cannot be read ("permission denied"), not the runtime's sentence.
            var problem = e is FileNotFoundException or DirectoryNotFoundException ? "no such file"
                : Directory.Exists(path) ? "is a directory, not a gateway file"
                : RulesException.CannotRead(path, e).Problem;
            throw new GatewayFileException([new GatewayError(path, null, null, "", problem)]);
        }
        return Load(new RulesFile(path, text));
    }

    /// <summary>Loads a gateway file already read.</summary>
    /// <exception cref="GatewayFileException">The file has errors (all of them).</exception>
    public static GatewayConfig Load(RulesFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        var y = new YamlCollector(file);
        YamlStream stream;
        try
        {
            stream = YamlRules.Parse(file);
        }
        catch (RulesException e)
        {
            throw new GatewayFileException([new GatewayError(e.File, e.Line, e.Column, e.Field ?? "", e.Problem, "the file is not valid YAML")]);
        }
        if (stream.Documents.Count != 1 || stream.Documents[0].RootNode is not YamlMappingNode root)
        {
            throw new GatewayFileException([new GatewayError(file.Path, 1, 1, "",
                "a gateway file is one YAML mapping (services, listeners, backends, routes, tenants, policies, ...)",
                "see deploy/examples/gateway.yaml for a complete example")]);
        }

        var config = new Reader(y).Read(root);
        if (y.Errors.Count > 0 || config is null)
            throw new GatewayFileException(y.Errors.OrderBy(e => e.Line ?? 0).ThenBy(e => e.Column ?? 0).ToArray());
        return config;
    }

    /// <summary>One pass over the file: reads every section, then checks the names and routes against each other.</summary>
    private sealed class Reader(YamlCollector y)
    {
        private readonly Dictionary<string, YamlNode> _backendNodes = new(StringComparer.Ordinal);
        private readonly Dictionary<string, BackendConfig> _backends = new(StringComparer.Ordinal);
        private readonly Dictionary<string, YamlNode> _tenantNodes = new(StringComparer.Ordinal);
        private readonly Dictionary<string, YamlNode> _policyNodes = new(StringComparer.Ordinal);
        private readonly Dictionary<string, YamlNode> _providerNodes = new(StringComparer.Ordinal);
        private readonly Dictionary<string, YamlNode> _planNodes = new(StringComparer.Ordinal);
        private readonly Dictionary<string, YamlNode> _tenantPlanNodes = new(StringComparer.Ordinal);

        private RulesFile File => y.File;

        public GatewayConfig? Read(YamlMappingNode root)
        {
            y.CheckFields(root, "", GatewayFields.Top);
            var services = ReadServices(Field(root, "services"));
            var listeners = ReadListeners(Field(root, "listeners"));
            var backends = ReadBackends(Field(root, "backends"));
            var providers = ReadProviders(Field(root, "jwt_providers"));
            var policies = ReadPolicies(Field(root, "policies"));
            var apiKeys = ReadApiKeys(Field(root, "api_keys"));
            var identity = y.Mapping(Field(root, "identity_headers"), "identity_headers", "is a mapping (tenant, subject, client, claims)");
            if (identity is not null)
                y.CheckFields(identity, "identity_headers", GatewayFields.IdentityHeaders);
            var stripCredentials = y.Bool(root, "strip_credentials", "");
            var stripAuthorization = y.Bool(root, "strip_authorization", "");
            var clientAddress = Field(root, "client_address") is { } ca && !IsNull(ca) ? ca : null;   // authz's to check
            var quotas = ReadQuotas(Field(root, "quotas"), "quotas", GatewayFields.Quotas);
            var plans = ReadPlans(Field(root, "plans"));
            var tenants = ReadTenants(Field(root, "tenants"), root, plansListed: Field(root, "plans") is { } p && !IsNull(p));
            var defaultPolicy = y.String(root, "default_policy", "") ?? DefaultPolicyName;
            var routes = ReadRoutes(Field(root, "routes"), root);

            CheckTenants(tenants, apiKeys, root);
            CheckPlanQuotas(plans, tenants, quotas, root);
            CheckDefaultPolicy(root, defaultPolicy);
            CheckRouteHosts(routes, tenants);
            CheckConflicts(routes);

            var config = new GatewayConfig(File.Path, services, listeners, backends, routes.Select(r => r.Route).ToArray(), tenants, providers, policies,
                apiKeys, identity, stripCredentials, stripAuthorization, quotas, plans, defaultPolicy, clientAddress, root);
            CheckIdentityHeaderMatches(routes, Render.EnvoyConfig.IdentityHeaderNames(config));
            CheckIdentityHeaderEdits(routes, Render.EnvoyConfig.IdentityHeaderNames(config));
            return config;
        }

        // ---- services ----------------------------------------------------------------------------------------------

        private ServicesConfig ReadServices(YamlNode? node)
        {
            var d = ServicesConfig.Default;
            var map = y.Mapping(node, "services", "is a mapping (authz, ratelimit, statsink)");
            if (map is null)
                return d;
            y.CheckFields(map, "services", GatewayFields.Services);

            var authz = y.Mapping(Field(map, "authz"), "services.authz");
            var ratelimit = y.Mapping(Field(map, "ratelimit"), "services.ratelimit");
            var statsink = y.Mapping(Field(map, "statsink"), "services.statsink");
            if (authz is not null)
                y.CheckFields(authz, "services.authz", GatewayFields.AuthzService);
            if (ratelimit is not null)
                y.CheckFields(ratelimit, "services.ratelimit", GatewayFields.RateLimitService);
            if (statsink is not null)
                y.CheckFields(statsink, "services.statsink", GatewayFields.StatSinkService);

            var domain = ratelimit is null ? null : y.String(ratelimit, "domain", "services.ratelimit");
            if (domain is not null && !NamePattern().IsMatch(domain))
            {
                y.Add(Field(ratelimit!, "domain"), "services.ratelimit.domain", $"'{domain}' is not a usable domain name",
                    "lower-case letters, digits, '.', '_' and '-' (it is also the ratelimit file's name)");
                domain = null;
            }
            var authzAddress = Address(authz, "services.authz", d.Authz);
            var ratelimitAddress = Address(ratelimit, "services.ratelimit", d.RateLimit);
            var statsinkAddress = Address(statsink, "services.statsink", d.StatSink);
            var tls = ReadServicesTls(map);
            var tlsGiven = Field(map, "tls") is { } t && !IsNull(t);
            var authzSni = Sni(authz, "services.authz", tlsGiven);
            var ratelimitSni = Sni(ratelimit, "services.ratelimit", tlsGiven);
            var statsinkSni = Sni(statsink, "services.statsink", tlsGiven);
            return new ServicesConfig(
                authzAddress,
                Timeout(authz, "services.authz", d.AuthzTimeout),
                FailureMode(authz, "services.authz", allowByDefault: false),
                ratelimitAddress,
                Timeout(ratelimit, "services.ratelimit", d.RateLimitTimeout),
                !FailureMode(ratelimit, "services.ratelimit", allowByDefault: true),
                domain ?? d.RateLimitDomain,
                statsinkAddress,
                FlushInterval(statsink) ?? d.StatsFlushInterval,
                tls is null ? null : tls with { AuthzSni = authzSni, RateLimitSni = ratelimitSni, StatSinkSni = statsinkSni });
        }

        /// <summary>
        /// <c>services.tls</c>: Envoy calls the three services over TLS, checking each one's certificate against
        /// <c>ca_file</c> and the service's name, and presents <c>cert_file</c>/<c>key_file</c> (mutual TLS) when given.
        /// Paths are Envoy's own, checked for form only, as a listener's are.
        /// </summary>
        private ServiceLinkTls? ReadServicesTls(YamlMappingNode services)
        {
            const string path = "services.tls";
            if (y.Mapping(Field(services, "tls"), path, "is a mapping (ca_file, cert_file, key_file)") is not { } map)
                return null;
            y.CheckFields(map, path, GatewayFields.ServicesTls);
            if (Field(map, "ca_file") is not { } caNode || IsNull(caNode))
            {
                y.Add(map, path, "needs ca_file",
                    "the PEM CA bundle that issued the services' certificates, e.g. ca_file: /etc/legate-tls/legate-envoy/ca.crt: without it Envoy could not tell a service from anyone else");
            }
            var ca = EnvoyPath(map, "ca_file", path);
            var missing = CertificatePair.Where(f => Field(map, f) is not { } v || IsNull(v)).ToArray();
            if (missing.Length == 1)
            {
                y.Add(map, path, $"needs {missing[0]}",
                    "Envoy's client certificate is a pair: cert_file (the PEM chain, leaf first) and key_file (its PEM private key); leave both out for TLS without one");
            }
            var cert = EnvoyPath(map, "cert_file", path);
            var key = EnvoyPath(map, "key_file", path);
            if (ca is null)
                return null;
            return new ServiceLinkTls(ca, cert is not null && key is not null ? new TlsCertificateFiles(cert, key) : null);
        }

        /// <summary>A service's <c>sni</c>: the DNS name its certificate must carry (default: its address's host).</summary>
        private string? Sni(YamlMappingNode? node, string path, bool tls)
        {
            if (node is null || y.String(node, "sni", path) is not { } sni)
                return null;
            if (!tls)
            {
                y.Add(Field(node, "sni"), path + ".sni", "is set but services.tls is not: the service is called over plain h2c",
                    "add services.tls (ca_file; cert_file and key_file for mutual TLS), or remove sni");
                return null;
            }
            if (System.Net.IPAddress.TryParse(sni, out _) || Uri.CheckHostName(sni) != UriHostNameType.Dns)
            {
                y.Add(Field(node, "sni"), path + ".sni", $"'{sni}' is not a DNS name",
                    "the host name the service's certificate carries, e.g. authz.legate.svc; with an IP address as the address, leave sni out: the certificate must then carry that IP");
                return null;
            }
            return sni;
        }

        private TimeSpan? FlushInterval(YamlMappingNode? statsink)
        {
            if (statsink is null || y.Duration(statsink, "flush_interval", "services.statsink", TimeSpan.FromSeconds(1)) is not { } interval)
                return null;
            if (interval < MaxFlushInterval)
                return interval;
            // Envoy refuses a bootstrap whose stats_flush_interval is 5 minutes or more.
            y.Add(Field(statsink, "flush_interval"), "services.statsink.flush_interval", "must be under 5m (Envoy's limit)", "e.g. 10s, the default");
            return null;
        }

        private static readonly TimeSpan MaxFlushInterval = TimeSpan.FromMinutes(5);

        private ServiceAddress Address(YamlMappingNode? node, string path, ServiceAddress fallback)
        {
            if (node is null || y.String(node, "address", path) is not { } text)
                return fallback;
            if (TryHostPort(text, out var address))
                return address;
            y.Add(Field(node, "address"), path + ".address", $"'{text}' is not host:port", "e.g. authz:9001 or 10.0.0.5:9001");
            return fallback;
        }

        private TimeSpan Timeout(YamlMappingNode? node, string path, TimeSpan fallback)
            => node is null ? fallback : y.Duration(node, "timeout", path, TimeSpan.FromMilliseconds(1)) ?? fallback;

        private bool FailureMode(YamlMappingNode? node, string path, bool allowByDefault)
        {
            if (node is null || y.String(node, "failure_mode", path) is not { } mode)
                return allowByDefault;
            switch (mode)
            {
                case "allow": return true;
                case "deny": return false;
                default:
                    y.Add(Field(node, "failure_mode"), path + ".failure_mode", $"unknown failure mode '{mode}'",
                        "allow (let requests through while the service cannot answer) or deny (refuse them)");
                    return allowByDefault;
            }
        }

        // ---- listeners ---------------------------------------------------------------------------------------------

        private ListenerConfig[] ReadListeners(YamlNode? node)
        {
            if (node is null || IsNull(node))
                return [new ListenerConfig("http", "0.0.0.0", 8080)];
            var list = new List<ListenerConfig>();
            var names = new HashSet<string>(StringComparer.Ordinal);
            var ports = new HashSet<int>();
            var redirects = new List<(int Port, YamlMappingNode Node, string Path)>();
            var items = y.Sequence(node, "listeners");
            for (var i = 0; i < items.Count; i++)
            {
                var path = $"listeners[{i}]";
                if (y.Mapping(items[i], path) is not { } map)
                    continue;
                y.CheckFields(map, path, GatewayFields.Listener);
                var name = y.String(map, "name", path) ?? (i == 0 ? "http" : $"http{i}");
                var address = y.String(map, "address", path) ?? "0.0.0.0";
                if (!System.Net.IPAddress.TryParse(address, out _))
                    y.Add(Field(map, "address"), path + ".address", $"'{address}' is not an IP address", "0.0.0.0 for every interface, 127.0.0.1 for loopback only");
                var port = (int)(y.Number(map, "port", path, 1, 65535) ?? 8080);
                if (!NamePattern().IsMatch(name) || !names.Add(name))
                    y.Add(Field(map, "name") ?? map, path + ".name", $"listener name '{name}' is not valid or is used twice", "each listener needs its own lower-case name");
                if (ReservedPorts.Contains(port) || !ports.Add(port))
                    y.Add(Field(map, "port") ?? map, path + ".port", $"port {port} is taken", $"ports {string.Join(", ", ReservedPorts)} are Envoy's admin, stats and ready ports; each listener needs its own port");
                var tls = ReadListenerTls(map, path);
                var redirect = ReadHttpsRedirect(map, path);
                if (tls is not null && redirect is not null)
                {
                    y.Add(Field(map, "https_redirect"), path + ".https_redirect", "a listener with tls is already https: it cannot also redirect to https",
                        "redirect on a separate plain listener: - { name: http, port: 8080, https_redirect: true }");
                    redirect = null;
                }
                else if (redirect == port)
                {
                    y.Add(Field(map, "https_redirect"), path + ".https_redirect", $"redirects to its own port {port}, which speaks plain HTTP",
                        "name the port clients reach the TLS listener on: https_redirect: { port: 443 }");
                }
                else if (redirect is { } target)
                {
                    redirects.Add((target, map, path));
                }
                list.Add(new ListenerConfig(name, address, port, tls, redirect));
            }
            // A redirect to another plain listener's port: the client would start TLS on a listener that does not speak it.
            foreach (var (target, map, path) in redirects)
            {
                if (list.FirstOrDefault(l => l.Port == target && l.Tls is null) is { } plain)
                {
                    y.Add(Field(map, "https_redirect"), path + ".https_redirect", $"redirects to port {target}, where listener '{plain.Name}' speaks plain HTTP",
                        "name the port clients reach the TLS listener on: https_redirect: { port: 443 }");
                }
            }
            if (list.Count == 0 && items.Count == 0)
                y.Add(node, "listeners", "at least one listener is required", "omit 'listeners' for the default 0.0.0.0:8080");
            else if (list.Count > 0 && list.All(l => l.Redirects))
                y.Add(node, "listeners", "every listener redirects to https: none serves the routes", "add a listener with tls that serves them");
            return [.. list];
        }

        private static readonly int[] ReservedPorts = [19000, 19001, 19003];

        /// <summary>
        /// A listener's TLS: the certificates (Envoy picks one per connection by SNI against their DNS names, the
        /// first when none matches), the minimum version and an optional client CA. Paths are Envoy's own: checked
        /// for form only, since the files live where Envoy runs (a container, a mounted Secret), not beside this file.
        /// </summary>
        private ListenerTlsConfig? ReadListenerTls(YamlMappingNode listener, string listenerPath)
        {
            var path = listenerPath + ".tls";
            if (y.Mapping(Field(listener, "tls"), path, "is a mapping (certificates, min_version, client_ca_file)") is not { } map)
                return null;
            y.CheckFields(map, path, GatewayFields.ListenerTls);
            var certificates = new List<TlsCertificateFiles>();
            var items = y.Sequence(Field(map, "certificates"), path + ".certificates");
            if (items.Count == 0)
            {
                y.Add(Field(map, "certificates") ?? map, path + ".certificates", "at least one certificate is required",
                    "certificates: [{ cert_file: /etc/legate-tls/NAME/tls.crt, key_file: /etc/legate-tls/NAME/tls.key }]");
            }
            for (var i = 0; i < items.Count; i++)
            {
                var p = $"{path}.certificates[{i}]";
                if (y.Mapping(items[i], p, "is a mapping (cert_file, key_file)") is not { } entry)
                    continue;
                y.CheckFields(entry, p, GatewayFields.TlsCertificate);
                var missing = CertificatePair.Where(f => Field(entry, f) is not { } v || IsNull(v)).ToArray();
                if (missing.Length > 0)
                {
                    y.Add(entry, p, $"needs {string.Join(" and ", missing)}",
                        "a certificate is a pair: cert_file (the PEM chain, leaf first) and key_file (its PEM private key)");
                }
                var certFile = EnvoyPath(entry, "cert_file", p);
                var keyFile = EnvoyPath(entry, "key_file", p);
                if (certFile is null || keyFile is null)
                    continue;
                if (certificates.Any(c => c.CertFile == certFile))
                    y.Add(Field(entry, "cert_file"), p + ".cert_file", $"'{certFile}' is listed twice", "list each certificate once: Envoy only ever uses the first");
                else
                    certificates.Add(new TlsCertificateFiles(certFile, keyFile));
            }
            var minVersion = TlsVersion.Tls12;
            switch (y.String(map, "min_version", path))
            {
                case null or "1.2":
                    break;
                case "1.3":
                    minVersion = TlsVersion.Tls13;
                    break;
                case "1.0" or "1.1":
                    y.Add(Field(map, "min_version"), path + ".min_version", "TLS 1.0 and 1.1 are not offered (deprecated by RFC 8996)", "1.2 (the default) or 1.3");
                    break;
                case var other:
                    y.Add(Field(map, "min_version"), path + ".min_version", $"unknown TLS version '{other}'", "1.2 (the default) or 1.3");
                    break;
            }
            return new ListenerTlsConfig(certificates, minVersion, EnvoyPath(map, "client_ca_file", path));
        }

        /// <summary>A file Envoy reads: an absolute path as Envoy sees it; never resolved against the gateway file or read here.</summary>
        private string? EnvoyPath(YamlMappingNode node, string field, string path)
        {
            if (y.String(node, field, path) is not { } value)
                return null;
            if (value.StartsWith('/') && !value.EndsWith('/') && !value.Any(char.IsControl))
                return value;
            y.Add(Field(node, field), Join(path, field), $"'{value}' is not an absolute file path",
                "the path where Envoy sees the file (in its container), e.g. /etc/legate-tls/NAME/tls.crt: render does not read or copy it");
            return null;
        }

        /// <summary><c>https_redirect: true</c> (to port 443) or <c>{port: N}</c>: the port clients reach the TLS listener on.</summary>
        private int? ReadHttpsRedirect(YamlMappingNode listener, string listenerPath)
        {
            var path = listenerPath + ".https_redirect";
            if (Field(listener, "https_redirect") is not { } node || IsNull(node))
                return null;
            if (node is YamlScalarNode)
                return y.Bool(listener, "https_redirect", listenerPath) == true ? DefaultHttpsPort : null;
            if (y.Mapping(node, path, "is true or a mapping { port: N }") is not { } map)
                return null;
            y.CheckFields(map, path, GatewayFields.HttpsRedirect);
            return (int)(y.Number(map, "port", path, 1, 65535) ?? DefaultHttpsPort);
        }

        private const int DefaultHttpsPort = 443;

        private static readonly string[] CertificatePair = ["cert_file", "key_file"];

        // ---- backends ----------------------------------------------------------------------------------------------

        private BackendConfig[] ReadBackends(YamlNode? node)
        {
            var list = new List<BackendConfig>();
            foreach (var (name, map, key) in y.NamedMaps(node, "backends"))
            {
                var path = Join("backends", name);
                if (!CheckName(key, "backends", name))
                    continue;
                if (name.StartsWith("legate_", StringComparison.Ordinal))
                {
                    y.Add(key, path, "names starting with 'legate_' are reserved for the services' own clusters", "rename the backend");
                    continue;
                }
                _backendNodes[name] = key;
                y.CheckFields(map, path, GatewayFields.Backend);
                var endpoints = new List<ServiceAddress>();
                bool? tls = null;
                var urls = y.Strings(map, "urls", path);
                if (urls.Count == 0)
                    y.Add(Field(map, "urls") ?? key, path + ".urls", "at least one URL is required", "e.g. urls: [http://orders:8080]");
                foreach (var (url, urlNode) in urls)
                {
                    if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || uri.Host.Length == 0)
                    {
                        y.Add(urlNode, path + ".urls", $"'{url}' is not an http:// or https:// URL", "e.g. http://orders:8080");
                        continue;
                    }
                    if (uri.AbsolutePath != "/" || uri.Query.Length > 0 || uri.UserInfo.Length > 0)
                        y.Add(urlNode, path + ".urls", $"'{url}' has a path, query or user name", "a backend URL is scheme://host:port; use a route's rewrite for paths");
                    if (tls is { } t && t != (uri.Scheme == "https"))
                        y.Add(urlNode, path + ".urls", "mixes http:// and https:// URLs", "one backend speaks one protocol; split it into two backends");
                    tls = uri.Scheme == "https";
                    endpoints.Add(new ServiceAddress(uri.IdnHost.Trim('[', ']'), uri.Port));
                }

                string? sni = null, ca = null;
                if (y.Mapping(Field(map, "tls"), path + ".tls") is { } tlsMap)
                {
                    y.CheckFields(tlsMap, path + ".tls", GatewayFields.BackendTls);
                    sni = y.String(tlsMap, "sni", path + ".tls");
                    ca = y.String(tlsMap, "ca_file", path + ".tls");
                    if (tls != true)
                        y.Add(Field(map, "tls"), path + ".tls", "is set but the URLs are http://", "use https:// URLs for TLS to the backend");
                }

                HealthCheckConfig? health = null;
                if (y.Mapping(Field(map, "health_check"), path + ".health_check") is { } hc)
                {
                    var hp = path + ".health_check";
                    y.CheckFields(hc, hp, GatewayFields.HealthCheck);
                    var hcPath = y.String(hc, "path", hp) ?? "/healthz";
                    if (!hcPath.StartsWith('/'))
                        y.Add(Field(hc, "path"), hp + ".path", "must start with '/'");
                    var interval = y.Duration(hc, "interval", hp, TimeSpan.FromMilliseconds(100)) ?? TimeSpan.FromSeconds(10);
                    var timeout = y.Duration(hc, "timeout", hp, TimeSpan.FromMilliseconds(1)) ?? TimeSpan.FromSeconds(1);
                    if (timeout > interval)
                        y.Add(Field(hc, "timeout"), hp + ".timeout", "is longer than the interval", "a check must end before the next one starts");
                    health = new HealthCheckConfig(hcPath, interval, timeout,
                        (int)(y.Number(hc, "healthy_threshold", hp, 1, 100) ?? 1), (int)(y.Number(hc, "unhealthy_threshold", hp, 1, 100) ?? 3));
                }

                CircuitBreakersConfig? breakers = null;
                if (y.Mapping(Field(map, "circuit_breakers"), path + ".circuit_breakers") is { } cb)
                {
                    var cp = path + ".circuit_breakers";
                    y.CheckFields(cb, cp, GatewayFields.CircuitBreakers);
                    breakers = new CircuitBreakersConfig(y.Number(cb, "max_connections", cp, 1, uint.MaxValue), y.Number(cb, "max_pending_requests", cp, 1, uint.MaxValue),
                        y.Number(cb, "max_requests", cp, 1, uint.MaxValue), y.Number(cb, "max_retries", cp, 0, uint.MaxValue));
                }

                OutlierDetectionConfig? outlier = null;
                if (y.Mapping(Field(map, "outlier_detection"), path + ".outlier_detection") is { } od)
                {
                    var op = path + ".outlier_detection";
                    y.CheckFields(od, op, GatewayFields.OutlierDetection);
                    outlier = new OutlierDetectionConfig(y.Number(od, "consecutive_5xx", op, 1, 1000) ?? 5,
                        y.Duration(od, "interval", op, TimeSpan.FromMilliseconds(1)) ?? TimeSpan.FromSeconds(10),
                        y.Duration(od, "base_ejection_time", op, TimeSpan.FromMilliseconds(1)) ?? TimeSpan.FromSeconds(30),
                        y.Number(od, "max_ejection_percent", op, 0, 100) ?? 10);
                }

                list.Add(new BackendConfig(name, endpoints, tls ?? false, sni, ca is null ? null : RelativeTo(File, ca),
                    y.Duration(map, "connect_timeout", path, TimeSpan.FromMilliseconds(1)) ?? TimeSpan.FromSeconds(1),
                    y.Bool(map, "http2", path) ?? false, health, breakers, outlier));
                _backends[name] = list[^1];
            }
            return [.. list];
        }

        // ---- authz sections ----------------------------------------------------------------------------------------

        private JwtProviderConfig[] ReadProviders(YamlNode? node)
        {
            var list = new List<JwtProviderConfig>();
            foreach (var (name, map, key) in y.NamedMaps(node, "jwt_providers"))
            {
                if (!CheckName(key, "jwt_providers", name))
                    continue;
                var path = Join("jwt_providers", name);
                _providerNodes[name] = key;
                y.CheckFields(map, path, GatewayFields.JwtProvider);
                // The meaning of each field is authz's to check; render loads the result with authz's own loader.
                y.String(map, "issuer", path);
                y.Strings(map, "audiences", path);
                y.Strings(map, "algorithms", path);
                foreach (var field in (ReadOnlySpan<string>)["jwks_uri", "oidc_discovery_uri"])
                {
                    if (y.String(map, field, path) is { } uri && !Uri.TryCreate(uri, UriKind.Absolute, out _))
                        y.Add(Field(map, field), path + "." + field, "is not an absolute URL");
                }
                y.Duration(map, "clock_skew", path);
                y.Duration(map, "max_lifetime", path);
                ReadPlanClaim(map, path);
                var jwksFile = y.String(map, "jwks_file", path);
                if (jwksFile is not null && !System.IO.File.Exists(RelativeTo(File, jwksFile)))
                    y.Add(Field(map, "jwks_file"), path + ".jwks_file", $"'{jwksFile}' does not exist", "the path is relative to the gateway file");
                var sources = KeySources.Count(f => Field(map, f) is not null);
                if (sources != 1)
                    y.Add(key, path, sources == 0 ? "has no key source" : "has more than one key source", "exactly one of jwks_uri, oidc_discovery_uri, jwks, jwks_file");
                list.Add(new JwtProviderConfig(name, map, jwksFile is null ? null : RelativeTo(File, jwksFile)));
            }
            return [.. list];
        }

        /// <summary>
        /// <c>plan_claim</c>: one claim name, taken as written (<c>https://acme.example/plan</c> is one name), or the member
        /// names through nested objects (<c>[app_metadata, plan]</c>); authz's rule, checked here to point at the line.
        /// </summary>
        private void ReadPlanClaim(YamlMappingNode map, string path)
        {
            if (Field(map, "plan_claim") is not { } node || IsNull(node))
                return;
            const string Hint = "one claim name as written (plan, https://acme.example/plan), or the member names through nested objects ([app_metadata, plan])";
            var names = y.Try(() => YamlNodes.Strings(File, node, path + ".plan_claim"), Hint);
            if (names is not null && JwtProviderOptionsValidator.PlanClaimProblem([.. names.Select(n => n.Value)]) is { } problem)
                y.Add(node, path + ".plan_claim", problem, Hint);
        }

        private PolicyConfig[] ReadPolicies(YamlNode? node)
        {
            var list = new List<PolicyConfig>();
            foreach (var (name, map, key) in y.NamedMaps(node, "policies"))
            {
                if (!CheckName(key, "policies", name))
                    continue;
                var path = Join("policies", name);
                if (name == GatewayConfig.NoAuth)
                {
                    y.Add(key, path, "'none' is reserved: a route with auth: none skips authz altogether",
                        "name the policy differently, e.g. public: {credentials: [none]}");
                    continue;
                }
                _policyNodes[name] = key;
                y.CheckFields(map, path, GatewayFields.Policy);
                var credentials = y.Strings(map, "credentials", path);
                if (credentials.Count == 0)
                    y.Add(Field(map, "credentials") ?? key, path + ".credentials", "is required", "any of jwt, api_key, none");
                foreach (var (c, cn) in credentials)
                {
                    if (c is not ("jwt" or "api_key" or "none"))
                        y.Add(cn, path + ".credentials", $"unknown credential '{c}'", YamlCollector.Nearest(c, Credentials) is { } n ? $"did you mean '{n}'?" : "any of jwt, api_key, none");
                }
                var scopes = y.Strings(map, "scopes", path);
                if (scopes.Count > 0 && credentials.Any(c => c.Value == "none"))
                    y.Add(Field(map, "scopes"), path + ".scopes", "a policy accepting 'none' cannot require scopes");
                var methods = y.Strings(map, "methods", path);
                foreach (var (m, mn) in methods)
                {
                    if (!MethodPattern().IsMatch(m))
                        y.Add(mn, path + ".methods", $"'{m}' is not an HTTP method", "upper case, e.g. GET");
                }
                list.Add(new PolicyConfig(name, credentials.Select(c => c.Value).ToArray(), scopes.Select(s => s.Value).ToArray(), methods.Select(m => m.Value).ToArray(),
                    Field(map, "client_cidrs"), Field(map, "claims")));
            }
            return [.. list];
        }

        private ApiKeysConfig? ReadApiKeys(YamlNode? node)
        {
            if (y.Mapping(node, "api_keys", "is a mapping (file, header, query, prefix)") is not { } map)
                return null;
            y.CheckFields(map, "api_keys", GatewayFields.ApiKeys);
            var prefix = y.String(map, "prefix", "api_keys");
            if (prefix is not null && !ApiKeyFormat.IsPrefix(prefix))
                y.Add(Field(map, "prefix"), "api_keys.prefix", $"'{prefix}' is not a key prefix", $"{ApiKeyFormat.PrefixRule}: the --prefix given to `legate keys create`");
            var file = y.String(map, "file", "api_keys");
            var redis = y.Bool(map, "redis", "api_keys") ?? false;
            var cacheTtl = y.Duration(map, "cache_ttl", "api_keys") is not null ? y.String(map, "cache_ttl", "api_keys") : null;
            if ((file is null) == !redis)
            {
                y.Add(map, "api_keys", "needs exactly one store", "file: keys.yaml (written by `legate keys create`, relative to the gateway file) or redis: true");
                return null;
            }
            string? full = null;
            if (file is not null)
            {
                full = RelativeTo(File, file);
                if (!System.IO.File.Exists(full))
                    y.Add(Field(map, "file"), "api_keys.file", $"'{file}' does not exist", "the path is relative to the gateway file; `legate keys create` makes one");
            }
            return new ApiKeysConfig(full, y.String(map, "header", "api_keys"), y.String(map, "query", "api_keys"), redis, cacheTtl, prefix);
        }

        private PlanConfig[] ReadPlans(YamlNode? node)
        {
            var list = new List<PlanConfig>();
            foreach (var (name, map, key) in y.NamedMaps(node, "plans"))
            {
                if (!CheckName(key, "plans", name))
                    continue;
                var path = Join("plans", name);
                _planNodes[name] = key;
                if (name == Render.Descriptors.NoPlan)
                {
                    y.Add(key, path, $"'{name}' is the plan authz reports for a caller whose API key and tenant name none, so it cannot be defined here",
                        "the top-level quotas: are the quotas of such callers (and of every plan not listed here); give this plan another name");
                    continue;
                }
                list.Add(new PlanConfig(name, ReadQuotas(map, path, GatewayFields.Plan, "the plan's tenant")));
            }
            return [.. list.OrderBy(p => p.Name, StringComparer.Ordinal)];
        }

        private TenantConfig[] ReadTenants(YamlNode? node, YamlMappingNode root, bool plansListed)
        {
            var list = new List<TenantConfig>();
            var hostOwners = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var (name, map, key) in y.NamedMaps(node, "tenants"))
            {
                if (!CheckName(key, "tenants", name))
                    continue;
                var path = Join("tenants", name);
                _tenantNodes[name] = key;
                y.CheckFields(map, path, GatewayFields.Tenant);
                var hosts = new List<string>();
                foreach (var (host, hostNode) in y.Strings(map, "hosts", path))
                {
                    var normal = host.ToLowerInvariant().TrimEnd('.');
                    if (!HostPattern().IsMatch(normal))
                    {
                        y.Add(hostNode, path + ".hosts", $"'{host}' is not a host name", "a DNS name or IP address, without port or scheme");
                        continue;
                    }
                    if (hostOwners.TryGetValue(normal, out var owner))
                        y.Add(hostNode, path + ".hosts", $"host '{normal}' already belongs to tenant '{owner}'", "a host identifies one tenant");
                    else
                        hostOwners.Add(normal, name);
                    hosts.Add(normal);
                }
                var jwt = new List<string>();
                foreach (var (provider, providerNode) in y.Strings(map, "jwt", path))
                {
                    if (!_providerNodes.ContainsKey(provider))
                        y.Add(providerNode, path + ".jwt", $"no jwt_providers entry named '{provider}'", Suggest(provider, _providerNodes.Keys, "jwt_providers"));
                    jwt.Add(provider);
                }
                var quotas = ReadQuotas(Field(map, "quotas"), path + ".quotas", GatewayFields.TenantQuotas);
                var plan = y.String(map, "plan", path);
                if (plan is not null)
                {
                    _tenantPlanNodes[name] = Field(map, "plan")!;
                    // With plans listed, a tenant's plan picks its quotas: a name the file lacks is a typo, not a choice.
                    if (plansListed && plan == Render.Descriptors.NoPlan && !_planNodes.ContainsKey(plan))
                    {
                        y.Add(Field(map, "plan"), path + ".plan", $"'{plan}' is authz's plan for a caller whose API key and tenant name none, not a plan of plans",
                            $"remove plan: to give {name}'s clients the quotas: defaults, or name one of plans: {string.Join(", ", _planNodes.Keys.Order(StringComparer.Ordinal))}");
                    }
                    else if (plansListed && !_planNodes.ContainsKey(plan))
                    {
                        y.Add(Field(map, "plan"), path + ".plan", $"no plan named '{plan}'", Suggest(plan, _planNodes.Keys, "plans"));
                    }
                }
                list.Add(new TenantConfig(name, hosts, plan, jwt, y.Bool(map, "api_keys", path) ?? false, quotas, Field(map, "tokens_from")));
            }
            if (list.Count == 0 && _tenantNodes.Count == 0)
                y.Add(Field(root, "tenants") ?? root, "tenants", "at least one tenant is required", "authz denies requests of unknown tenants: without tenants it would deny everything");
            return [.. list];
        }

        private QuotaSet ReadQuotas(YamlNode? node, string path, System.Collections.Frozen.FrozenSet<string> fields, string tenantName = "the tenant's")
        {
            if (y.Mapping(node, path) is not { } map)
                return QuotaSet.None;
            y.CheckFields(map, path, fields);
            var tenant = ReadQuota(Field(map, "tenant"), path + ".tenant");
            var client = ReadQuota(Field(map, "client"), path + ".client");
            var source = ReadQuota(Field(map, "source"), path + ".source");
            if (tenant is not null && client is not null)
                CheckNarrower(Field(map, "client")!, path + ".client", client, tenant, tenantName);
            return new QuotaSet(tenant, client, source);
        }

        private Quota? ReadQuota(YamlNode? node, string path)
        {
            if (y.Mapping(node, path, "is a mapping {requests: N, per: second|minute|hour|day}") is not { } map)
                return null;
            y.CheckFields(map, path, GatewayFields.Quota);
            return ReadLimit(map, path);
        }

        private Quota? ReadLimit(YamlMappingNode map, string path)
        {
            var requests = y.Number(map, "requests", path, 0, uint.MaxValue);
            if (requests is null && Field(map, "requests") is null)
                y.Add(map, path + ".requests", "is required", "how many requests each window allows");
            if (requests == 0)
                y.Add(Field(map, "requests"), path + ".requests", "a quota of 0 requests can never be met: every request would be refused",
                    "use at least 1, or remove the route (or set its auth) to refuse traffic");
            var perText = y.String(map, "per", path);
            QuotaUnit? per = perText switch
            {
                null => null,
                "second" => QuotaUnit.Second,
                "minute" => QuotaUnit.Minute,
                "hour" => QuotaUnit.Hour,
                "day" => QuotaUnit.Day,
                _ => null,
            };
            if (perText is null && Field(map, "per") is null)
                y.Add(map, path + ".per", "is required", "second, minute, hour or day");
            else if (perText is not null && per is null)
                y.Add(Field(map, "per"), path + ".per", $"unknown unit '{perText}'", "second, minute, hour or day");
            return requests is > 0 && per is { } unit ? new Quota(requests.Value, unit) : null;
        }

        /// <summary>A narrower limit (a client within its tenant) that allows more than the wider one in the same window is never reached.</summary>
        private void CheckNarrower(YamlNode node, string path, Quota narrow, Quota wide, string wideName)
        {
            if (narrow.Per == wide.Per && narrow.Requests > wide.Requests)
            {
                y.Add(node, path, $"{narrow.Requests} per {narrow.Per.Name()} can never be reached: {wideName} limit is {wide.Requests} per {wide.Per.Name()}",
                    $"lower it to at most {wide.Requests}, or raise {wideName} limit");
            }
        }

        // ---- routes ------------------------------------------------------------------------------------------------

        private sealed record ReadRoute(RouteConfig Route, YamlNode Node);

        private List<ReadRoute> ReadRoutes(YamlNode? node, YamlMappingNode root)
        {
            var list = new List<ReadRoute>();
            var names = new Dictionary<string, int>(StringComparer.Ordinal);
            var items = y.Sequence(node, "routes");
            if (items.Count == 0)
                y.Add(node ?? root, "routes", "at least one route is required", "e.g. routes: [{name: api, match: {prefix: /}, backend: api}]");
            for (var i = 0; i < items.Count; i++)
            {
                var path = $"routes[{i}]";
                if (y.Mapping(items[i], path) is not { } map)
                    continue;
                y.CheckFields(map, path, GatewayFields.Route);
                var name = y.String(map, "name", path);
                if (name is null)
                {
                    if (Field(map, "name") is null)
                        y.Add(map, path + ".name", "is required", "a short name: it names the route in Envoy's stats and its rate limits");
                    name = $"route-{i}";
                }
                else if (!NamePattern().IsMatch(name))
                {
                    y.Add(Field(map, "name"), path + ".name", $"'{name}' is not a valid name", "lower-case letters, digits, '.', '_' and '-'");
                }
                else if (names.TryGetValue(name, out var other))
                {
                    y.Add(Field(map, "name"), path + ".name", $"route name '{name}' is also used by routes[{other}]", "route names are unique");
                }
                names.TryAdd(name, i);

                var match = ReadMatch(map, path);
                var backends = ReadRouteBackends(map, path);
                var rewrite = y.String(map, "rewrite", path);
                if (rewrite is not null)
                {
                    if (!rewrite.StartsWith('/'))
                        y.Add(Field(map, "rewrite"), path + ".rewrite", "must start with '/'");
                    if (match?.Kind == PathMatchKind.Regex)
                        y.Add(Field(map, "rewrite"), path + ".rewrite", "cannot rewrite a regex match", "match on prefix or path to rewrite it");
                }
                var timeout = y.Duration(map, "timeout", path, TimeSpan.FromMilliseconds(1));
                var retries = ReadRetries(map, path);
                var cors = ReadCors(map, path);
                var auth = y.String(map, "auth", path) ?? Field(root, "default_policy") switch
                {
                    YamlScalarNode { Value: { Length: > 0 } d } => d,
                    _ => DefaultPolicyName,
                };
                if (auth != GatewayConfig.NoAuth && Field(map, "auth") is { } authNode && !_policyNodes.ContainsKey(auth))
                    y.Add(authNode, path + ".auth", $"no policy named '{auth}'", Suggest(auth, _policyNodes.Keys.Append(GatewayConfig.NoAuth), "policies"));
                var tenant = y.String(map, "tenant", path);
                if (tenant is not null && !_tenantNodes.ContainsKey(tenant))
                    y.Add(Field(map, "tenant"), path + ".tenant", $"no tenant named '{tenant}'", Suggest(tenant, _tenantNodes.Keys, "tenants"));
                if (tenant is not null && auth == GatewayConfig.NoAuth)
                    y.Add(Field(map, "tenant"), path + ".tenant", "has no effect with auth: none (authz is not asked)",
                        "remove it, or use a policy with credentials: [none] to keep anonymous access with the tenant known");
                var limits = ReadRouteLimits(map, path, auth == GatewayConfig.NoAuth);
                var requestHeaders = ReadHeaderEdits(map, "request_headers", path);
                var responseHeaders = ReadHeaderEdits(map, "response_headers", path);
                var (hostRewrite, autoHostRewrite) = ReadHostRewrite(map, path, backends);

                if (match is not null)
                {
                    list.Add(new ReadRoute(new RouteConfig(name, match, backends, rewrite, timeout, retries, cors, auth, tenant, limits,
                        requestHeaders, responseHeaders, hostRewrite, autoHostRewrite), map));
                }
            }
            return list;
        }

        private RouteMatch? ReadMatch(YamlMappingNode route, string routePath)
        {
            var path = routePath + ".match";
            var map = y.Mapping(Field(route, "match"), path);
            if (map is null)
            {
                if (Field(route, "match") is null)
                    y.Add(route, path, "is required", "e.g. match: {prefix: /orders}");
                return null;
            }
            y.CheckFields(map, path, GatewayFields.Match);
            var kinds = new[] { ("prefix", PathMatchKind.Prefix), ("path", PathMatchKind.Exact), ("regex", PathMatchKind.Regex) }
                .Where(k => Field(map, k.Item1) is not null).ToArray();
            if (kinds.Length != 1)
            {
                y.Add(map, path, kinds.Length == 0 ? "names no path" : "names more than one of prefix, path, regex", "exactly one of prefix, path (exact) or regex");
                return null;
            }
            var (field, kind) = kinds[0];
            var value = y.String(map, field, path);
            if (value is null)
                return null;
            if (kind != PathMatchKind.Regex && !value.StartsWith('/'))
                y.Add(Field(map, field), $"{path}.{field}", "must start with '/'");
            if (kind != PathMatchKind.Regex && value.AsSpan().IndexOfAny('?', '#') >= 0)
            {
                y.Add(Field(map, field), $"{path}.{field}", "contains '?' or '#', which a request path never does (Envoy refuses it in a prefix)",
                    "match the query string with query: {name: value}");
            }
            if (kind == PathMatchKind.Prefix && value.Length > 1)
            {
                // Matched segment-wise: /orders covers /orders and /orders/..., not /ordersx. Only slashes ("//") is "/".
                value = value.TrimEnd('/');
                if (value.Length == 0)
                    value = "/";
            }
            if (kind == PathMatchKind.Regex && Re2Syntax.Problem(value) is { } problem)
                y.Add(Field(map, field), path + ".regex", $"is not a regular expression Envoy accepts: {problem}", "Envoy uses RE2 syntax (no look-around or back-references)");
            var methods = new List<string>();
            foreach (var (m, mn) in y.Strings(map, "methods", path))
            {
                if (!MethodPattern().IsMatch(m))
                    y.Add(mn, path + ".methods", $"'{m}' is not an HTTP method", "upper case, e.g. GET");
                else if (!methods.Contains(m))
                    methods.Add(m);
            }
            var headers = ReadValueMatches(map, "headers", path, header: true);
            foreach (var h in headers)
            {
                if (!HeaderPattern().IsMatch(h.Name))
                {
                    y.Add(Field(map, "headers"), path + ".headers", $"'{h.Name}' is not a header name", "lower-case; match the method with 'methods', the host with 'hosts'");
                }
                else if (h.Name == "host")
                {
                    // Envoy keeps Host as :authority in every HTTP version and looks "host" up there: an exact match on
                    // the authority as sent, where hosts (a virtual host) takes any port and any letter case.
                    y.Add(Field(map, "headers"), path + ".headers",
                        "'host' is the request's :authority to Envoy, compared exactly as the client sent it (port and letter case included), so the route would miss requests for the same host",
                        h.Kind == ValueMatchKind.Exact && !h.Invert ? $"match the host with hosts: [{h.Value}] (any port, any case)" : "match the host with hosts: [NAME, ...] (any port, any case)");
                }
            }
            var query = ReadValueMatches(map, "query", path, header: false);
            var hosts = new List<string>();
            foreach (var (h, hn) in y.Strings(map, "hosts", path))
            {
                var normal = h.ToLowerInvariant().TrimEnd('.');
                if (!HostPattern().IsMatch(normal))
                    y.Add(hn, path + ".hosts", $"'{h}' is not a host name", "a DNS name or IP address, without port or scheme (any port matches)");
                else if (!hosts.Contains(normal))
                    hosts.Add(normal);
            }
            methods.Sort(StringComparer.Ordinal);
            hosts.Sort(StringComparer.Ordinal);
            return new RouteMatch(kind, value, methods, headers, query, hosts);
        }

        /// <summary>
        /// <c>rewrite_host: NAME</c> (Envoy's <c>host_rewrite_literal</c>) or <c>true</c> (<c>auto_host_rewrite</c>: the
        /// host of the backend URL the request goes to). Envoy takes the host name of a DNS-resolved endpoint only: a
        /// backend with an IP address URL (a <c>STATIC</c> cluster, or an IP endpoint of a <c>STRICT_DNS</c> one) would
        /// get the Host unchanged or an address, so with <c>true</c> every backend of the route must name its hosts.
        /// </summary>
        private (string? Literal, bool Auto) ReadHostRewrite(YamlMappingNode route, string routePath, IReadOnlyList<WeightedBackend> backends)
        {
            var path = routePath + ".rewrite_host";
            if (Field(route, "rewrite_host") is not { } node || IsNull(node) || y.String(route, "rewrite_host", routePath) is not { } value)
                return (null, false);
            if (value == "false")
                return (null, false);
            if (value == "true")
            {
                foreach (var b in backends)
                {
                    if (_backends.TryGetValue(b.Name, out var backend) && backend.Endpoints.FirstOrDefault(e => System.Net.IPAddress.TryParse(e.Host, out _)) is { Host: { } ip })
                    {
                        y.Add(node, path, $"backend '{b.Name}' has an IP address URL ({ip}): Envoy rewrites the Host to the host name of a DNS-resolved endpoint only, so there is none to use",
                            "name the host instead: rewrite_host: NAME, or give the backend host-name URLs");
                        return (null, false);
                    }
                }
                return (null, true);
            }
            // A Host value: name or IPv4 address, or an IPv6 address in brackets (bare, its colons would read as a port).
            var close = value.StartsWith('[') ? value.IndexOf(']', StringComparison.Ordinal) : -1;
            var (host, port) = close > 0
                ? (value[..(close + 1)], close + 1 == value.Length ? null : value[(close + 1)..] is [':', .. var rest] ? rest : "")
                : value.Split(':') is [var h, var pt] ? (h, pt) : (value, (string?)null);
            var hostOk = close > 0
                ? System.Net.IPAddress.TryParse(host[1..^1], out var v6) && v6.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
                : HostPattern().IsMatch(host);
            if (hostOk && (port is null || (int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var p) && p is >= 1 and <= 65535)))
            {
                return (value, false);
            }
            y.Add(node, path, $"'{value}' is not a host name", "lower-case host[:port] without scheme or path, e.g. orders.internal; or true for the backend URL's host");
            return (null, false);
        }

        /// <summary><c>{set: {name: value}, add: {name: value}, remove: [name]}</c>: a route's edits of the request or response headers.</summary>
        private HeaderEdits? ReadHeaderEdits(YamlMappingNode route, string field, string routePath)
        {
            var path = Join(routePath, field);
            if (y.Mapping(Field(route, field), path, "is a mapping (set, add, remove)") is not { } map)
                return null;
            y.CheckFields(map, path, GatewayFields.HeaderEdits);
            var seen = new Dictionary<string, string>(StringComparer.Ordinal);
            var set = Values("set");
            var add = Values("add");
            var remove = new List<string>();
            foreach (var (name, node) in y.Strings(map, "remove", path))
            {
                if (Name(name, node, path + ".remove", "remove"))
                    remove.Add(name);
            }
            return set.Count + add.Count + remove.Count == 0 ? null : new HeaderEdits(set, add, remove);

            List<KeyValuePair<string, string>> Values(string list)
            {
                var result = new List<KeyValuePair<string, string>>();
                var p = Join(path, list);
                if (y.Mapping(Field(map, list), p, "is a mapping name → value") is not { } values)
                    return result;
                foreach (var (k, v) in values.Children)
                {
                    if (y.Try(() => Key(File, k, p)) is not { } name || y.Try(() => Scalar(File, v, Join(p, name))) is not { } value || !Name(name, k, p, list))
                        continue;
                    if (value.Length == 0)
                        y.Add(v, Join(p, name), "is empty: Envoy leaves out a header with an empty value", list == "set" ? "to drop the header, list it under remove" : "give it a value");
                    else if (value.Any(char.IsControl))
                        y.Add(v, Join(p, name), "contains a control character (a line break, ...), which a header value cannot hold");
                    else
                        result.Add(new(name, value));
                }
                return result;
            }

            bool Name(string name, YamlNode node, string p, string list)
            {
                if (name.StartsWith(':'))
                {
                    y.Add(node, p, $"'{name}' is a pseudo-header: Envoy does not let a route edit it", name == ":authority" ? "set the Host the backend gets with rewrite_host" : "edit regular headers only");
                    return false;
                }
                if (!HeaderPattern().IsMatch(name))
                {
                    y.Add(node, p, $"'{name}' is not a header name", "lower-case letters, digits and !#$%&'*+.^_`|~-");
                    return false;
                }
                if (name == "host")
                {
                    y.Add(node, p, "Envoy does not let a route edit 'host' (the request's :authority)", "set the Host the backend gets with rewrite_host: NAME (or true: the backend URL's host)");
                    return false;
                }
                if (HopByHopHeaders.Contains(name))
                {
                    y.Add(node, p, $"'{name}' is a hop-by-hop or framing header, which Envoy sets itself on each connection", "edit the message's own headers only");
                    return false;
                }
                if (seen.TryGetValue(name, out var other))
                {
                    y.Add(node, p, $"'{name}' is also under {other}", "each header once: set replaces, add appends, remove drops");
                    return false;
                }
                seen.Add(name, list);
                return true;
            }
        }

        private static readonly string[] ValueMatchKinds = ["exact", "prefix", "suffix", "contains", "regex", "present"];

        /// <summary>
        /// <c>name: value</c> (an exact value, as always) or <c>name: {exact|prefix|suffix|contains|regex: value}</c>,
        /// <c>{present: true|false}</c>, and for headers <c>invert: true</c>: what Envoy's HeaderMatcher and
        /// QueryParameterMatcher can say (a query parameter can be neither inverted nor required absent).
        /// </summary>
        private List<ValueCondition> ReadValueMatches(YamlMappingNode match, string name, string matchPath, bool header)
        {
            var list = new List<ValueCondition>();
            var path = Join(matchPath, name);
            if (y.Mapping(Field(match, name), path, "is a mapping name → value (or name → {prefix: ...}, {present: true}, ...)") is not { } map)
                return list;
            foreach (var (k, v) in map.Children)
            {
                if (y.Try(() => Key(File, k, path)) is not { } key)
                    continue;
                var p = Join(path, key);
                if (v is not YamlMappingNode condition)
                {
                    if (y.Try(() => Scalar(File, v, p)) is { } exact)
                        list.Add(ValueCondition.Exactly(key, exact));
                    continue;
                }
                y.CheckFields(condition, p, GatewayFields.ValueCondition);
                var kinds = ValueMatchKinds.Where(f => Field(condition, f) is not null).ToArray();
                if (kinds.Length == 0 && condition.Children.Keys.Any(k => k is not YamlScalarNode { Value: { } f } || !GatewayFields.ValueCondition.Contains(f)))
                    continue;   // an unknown field (a typo of one) was reported
                if (kinds.Length != 1)
                {
                    y.Add(condition, p, kinds.Length == 0 ? "names no condition" : $"names more than one condition ({string.Join(", ", kinds)})",
                        "exactly one of exact, prefix, suffix, contains, regex (RE2, the whole value) or present: true|false");
                    continue;
                }
                var invert = y.Bool(condition, "invert", p) ?? false;
                if (invert && !header)
                {
                    y.Add(Field(condition, "invert"), p + ".invert", "Envoy cannot invert a query parameter match", "match the values you want instead");
                    continue;
                }
                if (kinds[0] == "present")
                {
                    if (y.Bool(condition, "present", p) is not { } present)
                        continue;
                    if (invert)
                    {
                        y.Add(Field(condition, "invert"), p + ".invert", "does not apply to present", present ? "write present: false for a missing header" : "write present: true");
                        continue;
                    }
                    if (!present && !header)
                    {
                        y.Add(Field(condition, "present"), p + ".present", "Envoy cannot match a missing query parameter (present: false)",
                            "put a route matching the parameter (present: true) before this one instead");
                        continue;
                    }
                    list.Add(new ValueCondition(key, present ? ValueMatchKind.Present : ValueMatchKind.Absent));
                    continue;
                }
                if (y.Try(() => Scalar(File, Field(condition, kinds[0])!, Join(p, kinds[0]))) is not { } value)
                    continue;
                var kind = kinds[0] switch
                {
                    "exact" => ValueMatchKind.Exact,
                    "prefix" => ValueMatchKind.Prefix,
                    "suffix" => ValueMatchKind.Suffix,
                    "contains" => ValueMatchKind.Contains,
                    _ => ValueMatchKind.Regex,
                };
                if (kind != ValueMatchKind.Exact && value.Length == 0)
                {
                    // Envoy's StringMatcher takes at least one character for all but exact.
                    y.Add(Field(condition, kinds[0]), Join(p, kinds[0]), "is empty", "present: true matches any value");
                    continue;
                }
                if (kind == ValueMatchKind.Regex && Re2Syntax.Problem(value) is { } problem)
                {
                    y.Add(Field(condition, kinds[0]), p + ".regex", $"is not a regular expression Envoy accepts: {problem}", "Envoy uses RE2 syntax (no look-around or back-references)");
                    continue;
                }
                list.Add(new ValueCondition(key, kind, value, invert));
            }
            return list;
        }

        private WeightedBackend[] ReadRouteBackends(YamlMappingNode route, string path)
        {
            var single = Field(route, "backend");
            var split = Field(route, "backends");
            if ((single is null) == (split is null))
            {
                y.Add(route, path, single is null ? "names no backend" : "has both backend and backends",
                    "backend: NAME for one backend, or backends: [{name: A, weight: 90}, {name: B, weight: 10}] for a weighted split");
                return [];
            }
            if (single is not null)
            {
                var name = y.String(route, "backend", path);
                if (name is null)
                    return [];
                CheckBackend(single, path + ".backend", name);
                return [new WeightedBackend(name, 1)];
            }
            var list = new List<WeightedBackend>();
            var items = y.Sequence(split, path + ".backends");
            if (items.Count == 0)
                y.Add(split, path + ".backends", "is empty", "list at least one {name, weight}");
            for (var i = 0; i < items.Count; i++)
            {
                var p = $"{path}.backends[{i}]";
                if (y.Mapping(items[i], p) is not { } map)
                    continue;
                y.CheckFields(map, p, GatewayFields.WeightedBackend);
                var name = y.String(map, "name", p);
                var weight = y.Number(map, "weight", p, 0, 10_000);
                if (name is null || weight is null)
                {
                    if (Field(map, "name") is null || Field(map, "weight") is null)
                        y.Add(map, p, "needs name and weight", "e.g. {name: orders, weight: 90}");
                    continue;
                }
                CheckBackend(Field(map, "name")!, p + ".name", name);
                if (list.Any(b => b.Name == name))
                    y.Add(Field(map, "name"), p + ".name", $"backend '{name}' is listed twice", "list each backend once and add up its weights");
                list.Add(new WeightedBackend(name, (int)weight));
            }
            if (list.Count > 0 && list.Sum(b => b.Weight) == 0)
                y.Add(split, path + ".backends", "the weights add up to 0: no backend would get traffic", "give at least one backend a weight above 0");
            return [.. list];
        }

        private void CheckBackend(YamlNode node, string path, string name)
        {
            if (!_backendNodes.ContainsKey(name))
                y.Add(node, path, $"no backend named '{name}'", Suggest(name, _backendNodes.Keys, "backends"));
        }

        private RetryConfig? ReadRetries(YamlMappingNode route, string routePath)
        {
            var path = routePath + ".retries";
            if (y.Mapping(Field(route, "retries"), path) is not { } map)
                return null;
            y.CheckFields(map, path, GatewayFields.Retries);
            var attempts = (int)(y.Number(map, "attempts", path, 1, 10) ?? 1);
            var on = new List<string>();
            foreach (var (c, cn) in y.Strings(map, "on", path))
            {
                if (!RetryConditions.Contains(c))
                    y.Add(cn, path + ".on", $"unknown retry condition '{c}'", YamlCollector.Nearest(c, RetryConditions) is { } n ? $"did you mean '{n}'?" : $"one of {string.Join(", ", RetryConditions)}");
                else if (ListedConditions.TryGetValue(c, out var list))
                    y.Add(cn, path + ".on", $"'{c}' retries nothing: Envoy retries on the {list} listed with it, and a gateway file lists no {list}", "retry on 5xx or gateway-error (502, 503, 504), or retriable-4xx (409)");
                else if (!on.Contains(c))
                    on.Add(c);
            }
            if (on.Count == 0)
                on.AddRange(["connect-failure", "refused-stream", "gateway-error"]);
            return new RetryConfig(attempts, on, y.Duration(map, "per_try_timeout", path, TimeSpan.FromMilliseconds(1)));
        }

        private CorsConfig? ReadCors(YamlMappingNode route, string routePath)
        {
            var path = routePath + ".cors";
            if (y.Mapping(Field(route, "cors"), path) is not { } map)
                return null;
            y.CheckFields(map, path, GatewayFields.Cors);
            var origins = y.Strings(map, "origins", path);
            if (origins.Count == 0)
                y.Add(Field(map, "origins") ?? map, path + ".origins", "at least one origin is required", "e.g. origins: [https://app.example.com]");
            foreach (var (o, on) in origins)
            {
                if (o != "*" && (!Uri.TryCreate(o, UriKind.Absolute, out var u) || u.AbsolutePath != "/" || o.EndsWith('/')))
                    y.Add(on, path + ".origins", $"'{o}' is not an origin", "scheme://host[:port] without a path, or * for any");
            }
            var credentials = y.Bool(map, "credentials", path) ?? false;
            if (credentials && origins.Any(o => o.Value == "*"))
                y.Add(Field(map, "credentials"), path + ".credentials", "browsers refuse credentials with origin *", "list the origins explicitly");
            var methods = y.Strings(map, "methods", path);
            foreach (var (m, mn) in methods)
            {
                if (!MethodPattern().IsMatch(m))
                    y.Add(mn, path + ".methods", $"'{m}' is not an HTTP method", "upper case, e.g. GET");
            }
            return new CorsConfig(origins.Select(o => o.Value).ToArray(), methods.Select(m => m.Value).ToArray(),
                y.Strings(map, "headers", path).Select(h => h.Value).ToArray(), y.Strings(map, "expose_headers", path).Select(h => h.Value).ToArray(),
                y.Duration(map, "max_age", path), credentials);
        }

        private RouteLimit[] ReadRouteLimits(YamlMappingNode route, string routePath, bool authDisabled)
        {
            var path = routePath + ".rate_limits";
            var list = new List<(RouteLimit Limit, YamlNode Node)>();
            var items = y.Sequence(Field(route, "rate_limits"), path);
            for (var i = 0; i < items.Count; i++)
            {
                var p = $"{path}[{i}]";
                if (y.Mapping(items[i], p) is not { } map)
                    continue;
                y.CheckFields(map, p, GatewayFields.RouteLimit);
                var byText = y.String(map, "by", p);
                LimitScope? by = byText switch
                {
                    "route" => LimitScope.Route,
                    "source" => LimitScope.Source,
                    "tenant" => LimitScope.Tenant,
                    "client" => LimitScope.Client,
                    _ => null,
                };
                if (by is null)
                {
                    y.Add(Field(map, "by") ?? map, p + ".by", byText is null ? "is required" : $"unknown scope '{byText}'",
                        "route (all requests on the route), source (per client address), tenant (per tenant), client (per tenant and client)");
                }
                else if (authDisabled && by is LimitScope.Tenant or LimitScope.Client)
                {
                    y.Add(Field(map, "by"), p + ".by", $"a per-{byText} limit needs authz, but the route has auth: none (no tenant or client is known)",
                        "use by: route or by: source, or a policy with credentials: [none] that still identifies the tenant");
                }
                else if (list.Any(l => l.Limit.By == by))
                {
                    y.Add(Field(map, "by"), p + ".by", $"the route already has a per-{byText} limit", "one limit per scope and route");
                }
                var quota = ReadLimit(map, p);
                if (by is { } scope && quota is not null)
                    list.Add((new RouteLimit(scope, quota), map));
            }
            // A narrower scope allowing more than a wider one in the same window is never reached.
            foreach (var (limit, node) in list)
            {
                var wider = limit.By switch
                {
                    LimitScope.Client => new[] { LimitScope.Tenant, LimitScope.Route },
                    LimitScope.Tenant or LimitScope.Source => [LimitScope.Route],
                    _ => [],
                };
                foreach (var w in wider)
                {
                    if (list.FirstOrDefault(l => l.Limit.By == w) is { Limit: { } wide })
                        CheckNarrower(node, path, limit.Quota, wide.Quota, $"the route's per-{w.ToString().ToLowerInvariant()}");
                }
            }
            return list.Select(l => l.Limit).ToArray();
        }

        // ---- cross checks ------------------------------------------------------------------------------------------

        private void CheckTenants(IReadOnlyList<TenantConfig> tenants, ApiKeysConfig? apiKeys, YamlMappingNode root)
        {
            if (apiKeys is not null || Field(root, "api_keys") is not null)
                return;
            foreach (var tenant in tenants.Where(t => t.ApiKeys))
            {
                y.Add(_tenantNodes[tenant.Name], Join("tenants", tenant.Name) + ".api_keys", "the tenant accepts API keys but no api_keys store is configured",
                    "add api_keys: {file: keys.yaml} at the top level");
            }
        }

        /// <summary>
        /// Plans leave no client without a quota and set no quota that cannot be reached. A client's plan comes with its
        /// credential (an API key's plan may be any text, and a caller whose key and tenant name none has authz's
        /// <c>default</c>), so a plan the file does not list must have a quota too: the top-level <c>quotas.client</c>.
        /// </summary>
        private void CheckPlanQuotas(IReadOnlyList<PlanConfig> plans, IReadOnlyList<TenantConfig> tenants, QuotaSet quotas, YamlMappingNode root)
        {
            if (plans.Any(p => p.Quotas.Client is not null) && quotas.Client is null && tenants.Any(t => t.Quotas.Client is null))
            {
                var withClient = plans.First(p => p.Quotas.Client is not null).Name;
                y.Add(root.Children.Keys.FirstOrDefault(k => k is YamlScalarNode { Value: "quotas" }) ?? _planNodes[withClient], "quotas.client",
                    $"is required when a plan has a client quota (plans.{withClient}.client): a client whose plan the file does not list — an API key made with another --plan, or a caller whose key and tenant name none, which authz reports as plan 'default' — would have no per-client limit",
                    "add quotas: {client: {requests: N, per: second}}, the client quota of every plan not listed in plans (or give every tenant its own quotas.client)");
            }

            // A tenant's limit and the client limit of its own plan may come from different places (its own quotas, its
            // plan, the defaults); where a plan is one of them, check them together as each place checks its own pair.
            foreach (var tenant in tenants)
            {
                if (tenant.Plan is null || plans.FirstOrDefault(p => p.Name == tenant.Plan) is not { } plan)
                    continue;
                var path = Join("tenants", tenant.Name);
                var planPath = Join("plans", plan.Name);
                var (wide, wideField) = tenant.Quotas.Tenant is { } own ? (own, path + ".quotas.tenant")
                    : plan.Quotas.Tenant is { } planned ? (planned, planPath + ".tenant")
                    : (quotas.Tenant, "quotas.tenant");
                var (narrow, narrowField) = tenant.Quotas.Client is { } ownClient ? (ownClient, path + ".quotas.client")
                    : plan.Quotas.Client is { } plannedClient ? (plannedClient, planPath + ".client")
                    : (quotas.Client, "quotas.client");
                // Pairs from one place were checked there (tenants.T.quotas, plans.P, quotas); only pairs a plan joins are new.
                var fromPlan = (wideField.StartsWith(planPath + ".", StringComparison.Ordinal), narrowField.StartsWith(planPath + ".", StringComparison.Ordinal));
                if (wide is null || narrow is null || fromPlan is (false, false) or (true, true))
                    continue;
                if (narrow.Per == wide.Per && narrow.Requests > wide.Requests)
                {
                    y.Add(_tenantPlanNodes[tenant.Name], path + ".plan",
                        $"{narrow.Requests} per {narrow.Per.Name()} for each client ({narrowField}) can never be reached: the tenant's limit is {wide.Requests} per {wide.Per.Name()} ({wideField})",
                        $"lower {narrowField} to at most {wide.Requests}, or raise {wideField}");
                }
            }
        }

        private void CheckDefaultPolicy(YamlMappingNode root, string defaultPolicy)
        {
            // The catch-all route (and every route without auth:) is checked with the default policy, so it must exist.
            if (defaultPolicy != GatewayConfig.NoAuth && !_policyNodes.ContainsKey(defaultPolicy))
            {
                y.Add(Field(root, "default_policy") ?? Field(root, "policies") ?? root, Field(root, "default_policy") is null ? "policies" : "default_policy",
                    $"no policy named '{defaultPolicy}'",
                    $"routes without auth: and requests no route matches are checked with the default policy; define policies.{defaultPolicy} (e.g. {{credentials: [api_key, jwt]}}) or set default_policy");
            }
        }

        private void CheckRouteHosts(List<ReadRoute> routes, IReadOnlyList<TenantConfig> tenants)
        {
            var owned = tenants.SelectMany(t => t.Hosts).ToHashSet(StringComparer.Ordinal);
            for (var i = 0; i < routes.Count; i++)
            {
                var route = routes[i].Route;
                if (route.AuthDisabled || route.Tenant is not null)
                    continue;
                foreach (var host in route.Match.Hosts.Where(h => !owned.Contains(h)))
                {
                    y.Add(Field((YamlMappingNode)routes[i].Node, "match"), $"routes[{i}].match.hosts",
                        $"host '{host}' belongs to no tenant: authz would deny every request to it",
                        "add the host to a tenant's hosts, or pin the route's tenant: with tenant: NAME");
                }
            }
        }

        private void CheckConflicts(List<ReadRoute> routes)
        {
            for (var j = 0; j < routes.Count; j++)
            {
                for (var i = 0; i < j; i++)
                {
                    var (a, b) = (routes[i].Route, routes[j].Route);
                    if (!a.Match.Covers(b.Match))
                        continue;
                    var same = a.Match == b.Match || (SameConditions(a.Match, b.Match) && a.Match.Kind == b.Match.Kind && a.Match.Path == b.Match.Path);
                    y.Add(Field((YamlMappingNode)routes[j].Node, "match") ?? routes[j].Node, $"routes[{j}].match",
                        same ? $"conflicts with route '{a.Name}': both match the same requests" : $"never matches: route '{a.Name}' above it matches every request it would",
                        same ? "give the routes different matches, or merge them" : "routes are tried in order: move the more specific route first");
                    break;
                }
            }
        }

        /// <summary>
        /// Every listener removes the identity headers on arrival and authz sets them only after routing, so a route
        /// matching one never matches (and could not route by what authz found: the route is chosen first).
        /// </summary>
        private void CheckIdentityHeaderMatches(List<ReadRoute> routes, IReadOnlyList<string> identityHeaders)
        {
            for (var i = 0; i < routes.Count; i++)
            {
                foreach (var h in routes[i].Route.Match.Headers.Where(h => identityHeaders.Contains(h.Name, StringComparer.OrdinalIgnoreCase)))
                {
                    var match = Field((YamlMappingNode)routes[i].Node, "match") as YamlMappingNode;
                    y.Add(match is null ? routes[i].Node : Field(match, "headers") ?? match, $"routes[{i}].match.headers",
                        h.Kind == ValueMatchKind.Absent
                            ? $"'{h.Name}' is an identity header: every listener removes it on arrival and authz sets it after routing, so it is always missing here and the condition says nothing"
                            : $"'{h.Name}' is an identity header: every listener removes it on arrival and authz sets it after routing, so the route would never match",
                        "route by host (hosts) or match another header; pin the tenant with tenant:");
                }
            }
        }

        /// <summary>
        /// The router applies a route's request header edits after ext_authz: removing an identity header would drop
        /// what authz set, and setting or adding one would forge an identity authz never gave. Response headers are
        /// the client's to read, not identity: those may be edited.
        /// </summary>
        private void CheckIdentityHeaderEdits(List<ReadRoute> routes, IReadOnlyList<string> identityHeaders)
        {
            for (var i = 0; i < routes.Count; i++)
            {
                if (routes[i].Route.RequestHeaders is not { } edits)
                    continue;
                var map = (YamlMappingNode)Field((YamlMappingNode)routes[i].Node, "request_headers")!;
                foreach (var (list, verb) in new[] { ("set", "setting"), ("add", "adding"), ("remove", "removing") })
                {
                    var names = list switch { "set" => edits.Set.Select(h => h.Key), "add" => edits.Add.Select(h => h.Key), _ => edits.Remove };
                    foreach (var name in names)
                    {
                        // Removing x_legate_tenant leaves authz's x-legate-tenant alone; sending it forges one for a backend that reads '_' as '-'.
                        if ((list == "remove" ? identityHeaders.FirstOrDefault(h => h.Equals(name, StringComparison.OrdinalIgnoreCase)) : IdentityHeaderLike(name, identityHeaders)) is not { } identity)
                            continue;
                        var which = identity.Equals(name, StringComparison.OrdinalIgnoreCase)
                            ? $"'{name}' is an identity header"
                            : $"'{name}' is an identity header (backends that read '_' as '-' take it for {identity})";
                        y.Add(Field(map, list) is YamlMappingNode m ? m.Children.Keys.First(k => k is YamlScalarNode { Value: var v } && v == name) : Field(map, list) ?? map,
                            $"routes[{i}].request_headers.{list}",
                            list == "remove"
                                ? $"{which}: the route's edits apply after authz, so removing it would drop what authz set (every listener already removes the client's own on arrival)"
                                : $"{which}: the route's edits apply after authz, so {verb} it would forge an identity authz never gave",
                            "edit another header; authz alone sets the identity headers");
                    }
                }
            }
        }

        private static bool SameConditions(RouteMatch a, RouteMatch b)
            => a.Methods.SequenceEqual(b.Methods) && a.Hosts.SequenceEqual(b.Hosts)
            && Same(a.Headers, b.Headers) && Same(a.Query, b.Query);

        private static bool Same(IReadOnlyList<ValueCondition> a, IReadOnlyList<ValueCondition> b)
            => a.OrderBy(m => m.Name, StringComparer.Ordinal).SequenceEqual(b.OrderBy(m => m.Name, StringComparer.Ordinal));

        // ---- helpers -----------------------------------------------------------------------------------------------

        private bool CheckName(YamlNode key, string section, string name)
        {
            if (NamePattern().IsMatch(name))
                return true;
            y.Add(key, Join(section, name), $"name '{name}' is not valid", "lower-case letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64 characters");
            return false;
        }

        private static string Suggest(string name, IEnumerable<string> known, string section)
        {
            var list = known.Order(StringComparer.Ordinal).ToArray();
            if (YamlCollector.Nearest(name, list) is { } near)
                return $"did you mean '{near}'?";
            return list.Length == 0 ? $"the file defines no {section}" : $"defined {section}: {string.Join(", ", list)}";
        }
    }

    /// <summary>
    /// The identity header <paramref name="name"/> would pass for at a backend, or null: names compare in any case and
    /// with '_' as '-', as CGI-style servers read them (HTTP_X_LEGATE_TENANT); the listeners refuse such names from
    /// clients (headers_with_underscores_action), and a route must not send one either.
    /// </summary>
    internal static string? IdentityHeaderLike(string name, IEnumerable<string> identityHeaders)
        => identityHeaders.FirstOrDefault(h => string.Equals(h.Replace('_', '-'), name.Replace('_', '-'), StringComparison.OrdinalIgnoreCase));

    /// <summary>
    /// Headers a route may not edit: connection-specific and framing headers, which Envoy manages itself per hop
    /// (an HTTP/2 peer refuses the connection-specific ones outright), as opposed to the message's own headers.
    /// </summary>
    internal static readonly string[] HopByHopHeaders =
        ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer", "content-length"];

    internal static bool TryHostPort(string text, out ServiceAddress address)
    {
        address = default;
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
            return false;
        var host = text[..colon].Trim('[', ']');
        if (!HostPattern().IsMatch(host.ToLowerInvariant()) && !System.Net.IPAddress.TryParse(host, out _))
            return false;
        address = new ServiceAddress(host, port);
        return true;
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9._-]{0,63}\\z")]
    internal static partial Regex NamePattern();

    [GeneratedRegex("^[A-Z][A-Z0-9-]{0,31}\\z")]
    private static partial Regex MethodPattern();

    [GeneratedRegex("^[a-z0-9!#$%&'*+.^_`|~-]{1,128}\\z")]
    private static partial Regex HeaderPattern();

    [GeneratedRegex("^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\\z")]
    private static partial Regex HostPattern();
}

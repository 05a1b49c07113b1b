using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Legate.Authz.Policies;
using Legate.Gateway.Loading;
using Legate.Gateway.Model;
using Legate.Hosting.Rules;
using YamlDotNet.RepresentationModel;

namespace Legate.Gateway.Import;

/// <summary>What <c>legate import</c> produced: the gateway file's text and every manifest field it could not carry over.</summary>
internal sealed record ImportResult(string Yaml, IReadOnlyList<GatewayError> Unmapped, int Routes, int Backends);

/// <summary>
/// Turns Kubernetes Ingress (networking.k8s.io/v1) and Gateway API HTTPRoute and GRPCRoute (gateway.networking.k8s.io/v1) manifests
/// into a gateway file. Anything without an equivalent is reported with the manifest's file:line:column and field, never
/// dropped silently; a match that would become broader without it (a regex header, a wildcard host) drops its route,
/// since serving more than the manifest asked for is worse than serving less. Output is deterministic.
/// </summary>
internal sealed partial class ManifestImporter
{
    /// <summary>The annotation that opts a manifest's routes out of authz (<c>none</c>); without it they get default_policy.</summary>
    public const string AuthAnnotation = "legate.dev/auth";

    public const string TenantName = "imported";
    public const string PolicyName = "default";

    private const string IngressApi = "networking.k8s.io/v1";
    private const string GatewayApiGroup = "gateway.networking.k8s.io/";

    private readonly List<GatewayError> _unmapped = [];
    private readonly SortedDictionary<string, Backend> _backends = new(StringComparer.Ordinal);
    private readonly List<Route> _routes = [];
    private readonly List<string> _files = [];
    private readonly SortedDictionary<int, Listener> _listeners = [];
    private readonly Dictionary<string, string> _secrets = new(StringComparer.Ordinal);   // Secret name → its namespace
    private bool _gateways;

    private sealed record Manifest(string File, string Kind, string Namespace, string Name, YamlMappingNode Node, bool NoAuth)
    {
        public string Id => $"{Kind} {Namespace}/{Name}";
    }

    private sealed record Backend(string Name, string Url, string Source, bool Http2);

    private sealed record Route(
        string Name,
        string Source,
        string Kind,
        string Path,
        IReadOnlyList<string> Methods,
        IReadOnlyList<ValueCondition> Headers,
        IReadOnlyList<ValueCondition> Query,
        IReadOnlyList<string> Hosts,
        IReadOnlyList<KeyValuePair<string, int>> Backends,
        string? Rewrite,
        string? Timeout,
        bool NoAuth,
        int Order,
        Manifest Manifest,
        YamlNode Node,
        string Field,
        int Rank,
        string? Cors,
        RuleFilters? Filters)
    {
        public int Conditions => (Methods.Count > 0 ? 1 : 0) + Headers.Count + Query.Count;

        /// <summary>What the route matches, as the gateway file's model states it.</summary>
        public RouteMatch Match => new(Kind switch
        {
            "path" => PathMatchKind.Exact,
            "regex" => PathMatchKind.Regex,
            _ => PathMatchKind.Prefix,
        }, Path, Methods, Headers, Query, Hosts);
    }

    /// <summary>A rule's header modifiers and URLRewrite hostname, as the gateway file's route fields (flow YAML, or a host).</summary>
    private sealed record RuleFilters(string? RequestHeaders, string? ResponseHeaders, string? HostRewrite);

    /// <summary>Imports the manifests of the given files, in order.</summary>
    /// <exception cref="GatewayFileException">A file is not valid YAML.</exception>
    public static ImportResult Import(IReadOnlyList<RulesFile> files)
    {
        ArgumentNullException.ThrowIfNull(files);
        var importer = new ManifestImporter();
        var syntax = new List<GatewayError>();
        foreach (var file in files)
        {
            YamlStream stream;
            try
            {
                stream = YamlRules.Parse(file);
            }
            catch (RulesException e)
            {
                syntax.Add(new GatewayError(e.File, e.Line, e.Column, e.Field ?? "", e.Problem, "the file is not valid YAML"));
                continue;
            }
            importer._files.Add(file.Path);
            foreach (var document in stream.Documents)
                importer.Object(file.Path, document.RootNode);
        }
        if (syntax.Count > 0)
            throw new GatewayFileException(syntax);
        return importer.Finish();
    }

    private void Object(string file, YamlNode node)
    {
        if (node is not YamlMappingNode map)
        {
            if (node is not YamlScalarNode { Value: null or "" })   // an empty document (a trailing ---) is fine
                Report(file, node, "", "is not a Kubernetes object", "expected a mapping with apiVersion and kind");
            return;
        }
        var kind = Str(map, "kind") ?? "";
        var api = Str(map, "apiVersion") ?? "";
        if (kind.EndsWith("List", StringComparison.Ordinal) && Get(map, "items") is YamlSequenceNode items)
        {
            foreach (var item in items)
                Object(file, item);
            return;
        }
        var meta = Get(map, "metadata") as YamlMappingNode;
        var name = meta is null ? "" : Str(meta, "name") ?? "";
        var ns = meta is null ? "default" : Str(meta, "namespace") ?? "default";
        switch (kind, api)
        {
            case ("Ingress", IngressApi):
            case ("HTTPRoute" or "GRPCRoute" or "Gateway", _) when api.StartsWith(GatewayApiGroup, StringComparison.Ordinal):
                break;
            case ("Ingress", _):
                Report(file, Get(map, "apiVersion") ?? map, "apiVersion", $"Ingress of apiVersion '{api}' is not imported",
                    $"only {IngressApi} (the others were removed in Kubernetes 1.22): convert it first");
                return;
            default:
                Report(file, Get(map, "kind") ?? map, "kind", $"{(kind.Length == 0 ? "an object without kind" : kind)} {ns}/{name} is not imported",
                    "legate import reads Ingress (networking.k8s.io/v1), Gateway, HTTPRoute and GRPCRoute (gateway.networking.k8s.io/v1)");
                return;
        }
        var noAuth = false;
        if (meta is not null && Get(meta, "annotations") is YamlMappingNode annotations)
        {
            foreach (var (keyNode, value) in annotations.Children)
            {
                var key = ((YamlScalarNode)keyNode).Value ?? "";
                var text = (value as YamlScalarNode)?.Value ?? "";
                if (key == AuthAnnotation && text == "none")
                    noAuth = true;
                else if (key == AuthAnnotation)
                    Report(file, value, $"metadata.annotations.{key}", $"'{text}' is not understood: the routes keep default_policy ({kind} {ns}/{name})", "the only value is 'none' (no authz check)");
                else if (key != "kubectl.kubernetes.io/last-applied-configuration")
                    Report(file, keyNode, $"metadata.annotations.{key}", $"has no equivalent in a gateway file: not applied ({kind} {ns}/{name})",
                        "express it in the generated file (rewrite, timeout, cors, rate_limits, auth) or drop it");
            }
        }
        var manifest = new Manifest(file, kind, ns, name, map, noAuth);
        if (Get(map, "spec") is not YamlMappingNode spec)
        {
            Report(file, map, "spec", $"{manifest.Id} has no spec: nothing imported");
            return;
        }
        if (kind == "Ingress")
        {
            Ingress(manifest, spec);
        }
        else if (kind == "Gateway")
        {
            _gateways = true;
            Gateway(manifest, spec);
        }
        else
            HttpRoute(manifest, spec, grpc: kind == "GRPCRoute");
    }

    // ---- listeners and TLS -----------------------------------------------------------------------------------------

    /// <summary>Where a TLS Secret is mounted into Envoy's pod: the chart's envoy.tlsSecrets puts Secret NAME at /etc/legate-tls/NAME/.</summary>
    public static string SecretFolder(string secret) => $"/etc/legate-tls/{secret}";

    /// <summary>The TLS port of Ingress TLS, and the plain port beside it (the gateway file's default listener).</summary>
    private const int IngressHttpsPort = 8443;
    private const int HttpPort = 8080;

    /// <summary>A listener to write: plain or TLS, with the TLS Secrets of its certificates in input order.</summary>
    private sealed record Listener(string Name, int Port, bool Tls, List<string> Secrets, string Source);

    /// <summary>Adds a Secret's certificate to the TLS listener on <paramref name="port"/> (made when missing).</summary>
    private void AddCertificate(Manifest m, YamlNode node, string field, int port, string ns, string secret)
    {
        if (_secrets.TryGetValue(secret, out var owner) && owner != ns)
        {
            Report(m, node, field, $"Secret {ns}/{secret} would be mounted at {SecretFolder(secret)}/, which Secret {owner}/{secret} already takes: not imported",
                "Envoy's pod mounts Secrets of its own namespace only: copy one there under another name");
            return;
        }
        if (ListenerOn(m, node, field, port, tls: true, "https") is not { } listener)
            return;
        _secrets[secret] = ns;
        if (!listener.Secrets.Contains(secret))
            listener.Secrets.Add(secret);
    }

    private Listener? ListenerOn(Manifest m, YamlNode node, string field, int port, bool tls, string name)
    {
        if (_listeners.TryGetValue(port, out var existing))
        {
            if (existing.Tls == tls)
                return existing;
            Report(m, node, field, $"port {port} would be both plain HTTP and TLS ({existing.Source}): not imported", "give the listeners different ports");
            return null;
        }
        var listener = new Listener(name, port, tls, [], $"{m.Id}, {Where(m.File, node)}");
        _listeners[port] = listener;
        return listener;
    }

    // ---- Gateway ---------------------------------------------------------------------------------------------------

    /// <summary>
    /// A Gateway's listeners: HTTP ones become plain listeners, HTTPS ones with <c>tls.mode: Terminate</c> TLS listeners
    /// with their Secrets' certificates. Ports below 1024 move up by 8000 (443 → 8443), as Envoy runs unprivileged.
    /// </summary>
    private void Gateway(Manifest m, YamlMappingNode spec)
    {
        var listeners = Get(spec, "listeners") as YamlSequenceNode;
        for (var i = 0; i < (listeners?.Children.Count ?? 0); i++)
        {
            var field = $"spec.listeners[{i}]";
            if (listeners!.Children[i] is not YamlMappingNode l)
                continue;
            var protocol = Str(l, "protocol") ?? "";
            if (!int.TryParse(Str(l, "port"), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
            {
                Report(m, Get(l, "port") ?? l, field + ".port", "is not a port number: listener not imported");
                continue;
            }
            if (protocol is not ("HTTP" or "HTTPS"))
            {
                Report(m, Get(l, "protocol") ?? l, field + ".protocol", $"protocol '{protocol}' has no equivalent (HTTP and HTTPS only): listener not imported",
                    "a gateway file's listeners speak HTTP, in plain or over TLS terminated by Envoy");
                continue;
            }
            if (Get(l, "hostname") is { } hostname)
            {
                Report(m, hostname, field + ".hostname", "has no equivalent: every listener serves every route (routes match hosts themselves)",
                    "give the routes hostnames");
            }
            var envoyPort = port < 1024 ? port + 8000 : port;
            var tls = Get(l, "tls") as YamlMappingNode;
            if (protocol == "HTTP")
            {
                ListenerOn(m, l, field, envoyPort, tls: false, "http");
                continue;
            }
            if ((tls is null ? null : Str(tls, "mode")) is { } mode && mode != "Terminate")
            {
                Report(m, Get(tls!, "mode")!, field + ".tls.mode", $"mode '{mode}' has no equivalent (Envoy terminates TLS): listener not imported");
                continue;
            }
            if (tls is not null && Get(tls, "options") is { } options)
                Report(m, options, field + ".tls.options", "has no equivalent: not applied", "set min_version or client_ca_file on the imported listener's tls");
            var refs = (tls is null ? null : Get(tls, "certificateRefs") as YamlSequenceNode)?.Children ?? [];
            if (refs.Count == 0)
                Report(m, tls ?? l, field + ".tls.certificateRefs", "names no certificate: listener not imported");
            for (var r = 0; r < refs.Count; r++)
            {
                if (refs[r] is not YamlMappingNode cr || Str(cr, "name") is not { Length: > 0 } secret)
                    continue;
                var rf = $"{field}.tls.certificateRefs[{r}]";
                if ((Str(cr, "kind") ?? "Secret") != "Secret" || (Str(cr, "group") ?? "") != "")
                {
                    Report(m, cr, rf, $"a certificate of kind {Str(cr, "kind")} is not imported", "only Secrets can be mounted into Envoy's pod");
                    continue;
                }
                AddCertificate(m, Get(cr, "name")!, rf + ".name", envoyPort, Str(cr, "namespace") ?? m.Namespace, secret);
            }
        }
    }

    // ---- Ingress ---------------------------------------------------------------------------------------------------

    private void Ingress(Manifest m, YamlMappingNode spec)
    {
        if (Get(spec, "tls") is YamlSequenceNode tls)
        {
            // Ingress TLS serves its hosts over HTTPS: a TLS listener on 8443 with each secret's certificate. Envoy picks
            // the certificate by SNI against the names it carries, so spec.tls[].hosts need no mapping.
            for (var i = 0; i < tls.Children.Count; i++)
            {
                if (tls.Children[i] is YamlMappingNode t && Str(t, "secretName") is { Length: > 0 } secret)
                    AddCertificate(m, Get(t, "secretName")!, $"spec.tls[{i}].secretName", IngressHttpsPort, m.Namespace, secret);
                else
                    Report(m, tls.Children[i], $"spec.tls[{i}]", "has no secretName: not imported", "a controller's default certificate has no equivalent; name the Secret");
            }
        }
        if (Get(spec, "rules") is YamlSequenceNode rules)
        {
            for (var i = 0; i < rules.Children.Count; i++)
            {
                var field = $"spec.rules[{i}]";
                if (rules.Children[i] is not YamlMappingNode rule)
                    continue;
                var hosts = new List<string>();
                if (Get(rule, "host") is YamlScalarNode { Value: { Length: > 0 } host } hostNode && !Host(m, hostNode, host, field + ".host", hosts))
                    continue;
                if (Get(rule, "http") is not YamlMappingNode http || Get(http, "paths") is not YamlSequenceNode paths)
                {
                    Report(m, rule, field + ".http", "no http paths: nothing imported for this rule",
                        "Ingress sends such a host to the default backend; add a path '/' if that is what you want");
                    continue;
                }
                for (var j = 0; j < paths.Children.Count; j++)
                {
                    if (paths.Children[j] is YamlMappingNode p)
                        IngressPath(m, p, $"{field}.http.paths[{j}]", hosts, $"{i}.{j}");
                }
            }
        }
        if (Get(spec, "defaultBackend") is YamlMappingNode fallback)
        {
            var backend = IngressBackend(m, fallback, "spec.defaultBackend");
            if (backend is not null)
                AddRoute(m, fallback, "spec.defaultBackend", "default", "prefix", "/", [], [], [], [], [new(backend, 1)], null, null);
        }
    }

    private void IngressPath(Manifest m, YamlMappingNode p, string field, List<string> hosts, string suffix)
    {
        var type = Str(p, "pathType") ?? "";
        var path = Str(p, "path") ?? "/";
        if (path.Length == 0)
            path = "/";
        string kind;
        switch (type)
        {
            case "Exact":
                kind = "path";
                break;
            case "Prefix":
                kind = "prefix";
                break;
            case "ImplementationSpecific":
                // Controllers differ (nginx: a prefix, or a regex with use-regex); a segment-wise prefix is the portable reading.
                kind = "prefix";
                break;
            default:
                Report(m, Get(p, "pathType") ?? p, field + ".pathType", $"pathType '{type}' is not Exact, Prefix or ImplementationSpecific: path not imported");
                return;
        }
        if (!path.StartsWith('/') || path.Contains('*', StringComparison.Ordinal) || (type == "ImplementationSpecific" && RegexChars().IsMatch(path)))
        {
            Report(m, Get(p, "path") ?? p, field + ".path", $"'{path}' is not a plain path: not imported",
                "controller-specific regex or glob paths have no portable meaning: write the route with match.regex");
            return;
        }
        var backend = Get(p, "backend") is YamlMappingNode b ? IngressBackend(m, b, field + ".backend") : null;
        if (backend is null)
            return;
        AddRoute(m, p, field, suffix, kind, path, [], [], [], hosts, [new(backend, 1)], null, null);
    }

    private string? IngressBackend(Manifest m, YamlMappingNode b, string field)
    {
        if (Get(b, "service") is not YamlMappingNode service)
        {
            Report(m, b, field, Get(b, "resource") is null ? "names no service: not imported" : "a resource backend (not a Service) is not imported",
                "only Service backends have an address a gateway file can name");
            return null;
        }
        var name = Str(service, "name");
        var port = Get(service, "port") as YamlMappingNode;
        if (name is null || port is null)
        {
            Report(m, service, field + ".service", "needs name and port: not imported");
            return null;
        }
        if (Str(port, "number") is not { } number)
        {
            Report(m, Get(port, "name") ?? port, field + ".service.port.name",
                $"port '{Str(port, "name")}' is named: its number is in the Service, which import does not read; not imported",
                "use port.number in the manifest");
            return null;
        }
        return AddBackend(m, service, field + ".service", m.Namespace, name, number);
    }

    // ---- HTTPRoute -------------------------------------------------------------------------------------------------

    private void HttpRoute(Manifest m, YamlMappingNode spec, bool grpc)
    {
        var hosts = new List<string>();
        if (Get(spec, "hostnames") is YamlSequenceNode hostnames)
        {
            for (var i = 0; i < hostnames.Children.Count; i++)
            {
                if (hostnames.Children[i] is YamlScalarNode { Value: { } h } hn)
                    Host(m, hn, h, $"spec.hostnames[{i}]", hosts);
            }
            if (hosts.Count == 0 && hostnames.Children.Count > 0)
            {
                Report(m, hostnames, "spec.hostnames", $"{m.Id}: none of its hostnames can be imported: route not imported",
                    "without a host it would serve every host");
                return;
            }
        }
        if (Get(spec, "rules") is not YamlSequenceNode rules)
        {
            // No rules: Gateway API sends everything to... nothing (404); there is nothing to carry over.
            Report(m, spec, "spec.rules", $"{m.Id} has no rules: nothing imported");
            return;
        }
        for (var i = 0; i < rules.Children.Count; i++)
        {
            if (rules.Children[i] is YamlMappingNode rule)
                HttpRule(m, rule, $"spec.rules[{i}]", hosts, i, grpc);
        }
    }

    private void HttpRule(Manifest m, YamlMappingNode rule, string field, List<string> hosts, int index, bool grpc)
    {
        foreach (var unsupported in new[] { "retry", "sessionPersistence" })
        {
            if (Get(rule, unsupported) is { } node)
                Report(m, node, $"{field}.{unsupported}", "has no equivalent in a gateway file: not applied",
                    unsupported == "retry" ? "set the route's retries: in the generated file" : null);
        }
        string? timeout = null;
        if (Get(rule, "timeouts") is YamlMappingNode timeouts)
        {
            if (Get(timeouts, "request") is YamlScalarNode { Value: { } t } tn)
            {
                timeout = Duration(t);
                if (timeout is null)
                    Report(m, tn, $"{field}.timeouts.request", $"'{t}' cannot be carried over: Envoy's default (15s) applies",
                        "a timeout of 0 (none) is not supported; set the route's timeout: in the generated file");
            }
            if (Get(timeouts, "backendRequest") is { } br)
                Report(m, br, $"{field}.timeouts.backendRequest", "has no equivalent without retries: not applied",
                    "set retries.per_try_timeout in the generated file");
        }

        // Filters: URLRewrite with ReplacePrefixMatch is the gateway file's rewrite; the rest has no equivalent.
        string? rewrite = null;
        string? cors = null;
        string? hostRewrite = null, requestHeaders = null, responseHeaders = null;
        var rewriteKind = "";
        var rewriteField = "";
        YamlNode? rewriteNode = null;
        if (Get(rule, "filters") is YamlSequenceNode filters)
        {
            for (var f = 0; f < filters.Children.Count; f++)
            {
                if (filters.Children[f] is not YamlMappingNode filter)
                    continue;
                var ff = $"{field}.filters[{f}]";
                var type = Str(filter, "type") ?? "";
                if (type == "URLRewrite" && Get(filter, "urlRewrite") is YamlMappingNode ur)
                {
                    if (Get(ur, "hostname") is YamlScalarNode { Value: { } hostname } hn)
                    {
                        if (HostPattern().IsMatch(hostname.ToLowerInvariant()))
                            hostRewrite = hostname.ToLowerInvariant();
                        else
                            Report(m, hn, ff + ".urlRewrite.hostname", $"'{hostname}' is not a host name: the Host header is passed on unchanged");
                    }
                    if (Get(ur, "path") is YamlMappingNode path)
                    {
                        rewriteKind = Str(path, "type") ?? "";
                        // An empty replacePrefixMatch drops the prefix (/foo/bar → /bar), which is the gateway file's rewrite: /.
                        rewrite = rewriteKind == "ReplacePrefixMatch" ? Str(path, "replacePrefixMatch") is { Length: > 0 } r ? r : "/" : Str(path, "replaceFullPath");
                        rewriteNode = path;
                        rewriteField = ff + ".urlRewrite.path";
                    }
                    continue;
                }
                if (type is "RequestHeaderModifier" or "ResponseHeaderModifier"
                    && Get(filter, type == "RequestHeaderModifier" ? "requestHeaderModifier" : "responseHeaderModifier") is YamlMappingNode modifier)
                {
                    var request = type == "RequestHeaderModifier";
                    var edits = HeaderModifier(m, modifier, ff + (request ? ".requestHeaderModifier" : ".responseHeaderModifier"), request);
                    if (request)
                        requestHeaders = edits;
                    else
                        responseHeaders = edits;
                    continue;
                }
                if (type == "CORS" && Get(filter, "cors") is YamlMappingNode c)
                {
                    cors = Cors(m, c, ff + ".cors");
                    continue;
                }
                if (type == "RequestRedirect")
                {
                    Report(m, filter, ff, "RequestRedirect has no equivalent in a gateway file: rule not imported",
                        "a gateway file routes to backends only; answer the redirect in a backend");
                    return;
                }
                Report(m, Get(filter, "type") ?? filter, ff, $"filter {(type.Length == 0 ? "without type" : type)} has no equivalent in a gateway file: not applied",
                    null);
            }
        }

        var backends = new List<KeyValuePair<string, int>>();
        if (Get(rule, "backendRefs") is YamlSequenceNode refs)
        {
            for (var b = 0; b < refs.Children.Count; b++)
            {
                if (refs.Children[b] is YamlMappingNode r && BackendRef(m, r, $"{field}.backendRefs[{b}]", grpc) is { } backend)
                {
                    var weight = Str(r, "weight") is { } w && int.TryParse(w, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : 1;
                    if (weight > 10000)
                    {
                        Report(m, Get(r, "weight")!, $"{field}.backendRefs[{b}].weight", $"{weight} is above 10000: rule not imported", "scale the weights down to 0-10000");
                        return;
                    }
                    var at = backends.FindIndex(x => x.Key == backend);
                    if (at >= 0)
                        backends[at] = new(backend, backends[at].Value + weight);
                    else
                        backends.Add(new(backend, weight));
                }
            }
        }
        if (backends.Count == 0 || backends.All(b => b.Value == 0))
        {
            Report(m, Get(rule, "backendRefs") ?? rule, field + ".backendRefs",
                backends.Count == 0 ? "no backend could be imported: rule not imported" : "every weight is 0: rule not imported",
                "Gateway API answers 500 here; a gateway file route needs a backend");
            return;
        }

        var ruleFilters = hostRewrite is null && requestHeaders is null && responseHeaders is null ? null : new RuleFilters(requestHeaders, responseHeaders, hostRewrite);
        var matches = Get(rule, "matches") as YamlSequenceNode;
        if (grpc)
        {
            if (matches is null || matches.Children.Count == 0)
                GrpcMatch(m, rule, field, hosts, index, 0, null, backends, ruleFilters);
            for (var k = 0; k < (matches?.Children.Count ?? 0); k++)
                GrpcMatch(m, matches!.Children[k], $"{field}.matches[{k}]", hosts, index, k, matches.Children[k] as YamlMappingNode, backends, ruleFilters);
            return;
        }
        if (matches is null || matches.Children.Count == 0)
        {
            HttpMatch(m, rule, field, hosts, index, 0, null, backends, (rewrite, rewriteKind, rewriteField, rewriteNode), timeout, cors, ruleFilters);
            return;
        }
        for (var k = 0; k < matches.Children.Count; k++)
        {
            if (matches.Children[k] is YamlMappingNode match)
                HttpMatch(m, match, $"{field}.matches[{k}]", hosts, index, k, match, backends, (rewrite, rewriteKind, rewriteField, rewriteNode), timeout, cors, ruleFilters);
        }
    }

    private void HttpMatch(Manifest m, YamlMappingNode node, string field, List<string> hosts, int rule, int index, YamlMappingNode? match,
        List<KeyValuePair<string, int>> backends, (string? Value, string Kind, string Field, YamlNode? Node) rewriteFilter, string? timeout, string? cors,
        RuleFilters? filters)
    {
        var (rewrite, rewriteKind, rewriteField, rewriteNode) = rewriteFilter;
        var (kind, path) = ("prefix", "/");
        if (match is not null && Get(match, "path") is YamlMappingNode p)
        {
            var type = Str(p, "type") ?? "PathPrefix";
            path = Str(p, "value") ?? "/";
            switch (type)
            {
                case "PathPrefix":
                    kind = "prefix";   // Gateway API prefixes match whole segments, as the gateway file's do
                    break;
                case "Exact":
                    kind = "path";
                    break;
                case "RegularExpression":
                    kind = "regex";
                    if (!IsRegex(path))
                    {
                        Report(m, Get(p, "value") ?? p, field + ".path.value", $"'{path}' is not a regular expression legate can check: match not imported",
                            "Envoy uses RE2 syntax (no look-around or back-references)");
                        return;
                    }
                    break;
                default:
                    Report(m, Get(p, "type") ?? p, field + ".path.type", $"path type '{type}' is not known: match not imported");
                    return;
            }
        }
        if (kind != "regex" && !path.StartsWith('/'))
        {
            Report(m, node, field + ".path.value", $"'{path}' does not start with '/': match not imported");
            return;
        }
        var methods = new List<string>();
        var headers = new List<ValueCondition>();
        var query = new List<ValueCondition>();
        if (match is not null)
        {
            if (Str(match, "method") is { } method)
                methods.Add(method);
            if (!Conditions(m, match, "headers", field, headers, lowerNames: true) || !Conditions(m, match, "queryParams", field, query, lowerNames: false))
                return;
        }
        string? routeRewrite = null;
        if (rewriteNode is not null)
        {
            if (kind == "regex" || (rewriteKind == "ReplaceFullPath" && kind != "path") || (rewriteKind != "ReplaceFullPath" && rewriteKind != "ReplacePrefixMatch"))
                Report(m, rewriteNode, rewriteField,
                    $"{(rewriteKind.Length == 0 ? "a rewrite without type" : rewriteKind)} on a {(kind == "path" ? "exact" : kind)} match has no equivalent: not applied to {field}",
                    "the gateway file rewrites the matched prefix (or a whole exact path)");
            else
                routeRewrite = rewrite;
        }
        AddRoute(m, node, field, $"{rule}.{index}", kind, path, methods, headers, query, hosts, backends, routeRewrite, timeout, cors: cors, filters: filters);
    }

    /// <summary>The CORS filter as the gateway file's <c>cors:</c> (flow YAML); origins with wildcards and <c>*</c> methods are reported.</summary>
    private string? Cors(Manifest m, YamlMappingNode c, string field)
    {
        var origins = new List<string>();
        var all = Get(c, "allowOrigins") as YamlSequenceNode;
        for (var i = 0; i < (all?.Children.Count ?? 0); i++)
        {
            var o = (all!.Children[i] as YamlScalarNode)?.Value ?? "";
            if (o == "*" || (!o.Contains('*', StringComparison.Ordinal) && Uri.TryCreate(o, UriKind.Absolute, out var u) && u.AbsolutePath == "/" && !o.EndsWith('/')))
                origins.Add(o);
            else
                Report(m, all.Children[i], $"{field}.allowOrigins[{i}]", $"origin '{o}' has no equivalent (exact origins or * only): not allowed", "list the origins it stands for");
        }
        if (origins.Count == 0)
        {
            Report(m, c, field, "no origin can be imported: CORS not applied");
            return null;
        }
        var methods = Strings(c, "allowMethods");
        if (methods.Contains("*"))
        {
            Report(m, Get(c, "allowMethods")!, field + ".allowMethods", "'*' has no equivalent: only the listed methods are allowed", "list the methods");
            methods.Remove("*");
        }
        var credentials = Str(c, "allowCredentials") == "true";
        if (credentials && origins.Contains("*"))
        {
            Report(m, Get(c, "allowCredentials")!, field + ".allowCredentials", "browsers refuse credentials with origin *: not applied");
            credentials = false;
        }
        var maxAge = Str(c, "maxAge") is { } a && int.TryParse(a, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds) && seconds > 0 ? seconds : 5;
        var parts = new List<string> { "origins: " + List(origins) };
        if (methods.Count > 0)
            parts.Add("methods: " + List(methods));
        if (Strings(c, "allowHeaders") is { Count: > 0 } headers)
            parts.Add("headers: " + List(headers.Select(h => h.ToLowerInvariant())));
        if (Strings(c, "exposeHeaders") is { Count: > 0 } expose)
            parts.Add("expose_headers: " + List(expose.Select(h => h.ToLowerInvariant())));
        parts.Add($"max_age: {maxAge.ToString(CultureInfo.InvariantCulture)}s");
        if (credentials)
            parts.Add("credentials: true");
        return "{ " + string.Join(", ", parts) + " }";
    }

    private static List<string> Strings(YamlMappingNode map, string key)
        => Get(map, key) is YamlSequenceNode seq ? seq.Children.OfType<YamlScalarNode>().Select(x => x.Value ?? "").ToList() : [];

    /// <summary>
    /// A GRPCRoute match: the gRPC path is <c>/service/method</c>; no match means every call. The rule's header
    /// modifiers apply as on an HTTPRoute (GRPCRoute has RequestHeaderModifier and ResponseHeaderModifier too).
    /// </summary>
    private void GrpcMatch(Manifest m, YamlNode node, string field, List<string> hosts, int rule, int index, YamlMappingNode? match,
        List<KeyValuePair<string, int>> backends, RuleFilters? filters)
    {
        var (kind, path) = ("prefix", "/");
        if (match is not null && Get(match, "method") is YamlMappingNode method)
        {
            var type = Str(method, "type") ?? "Exact";
            var service = Str(method, "service");
            var name = Str(method, "method");
            (kind, path) = (type, service, name) switch
            {
                ("Exact", { } s, { } n) => ("path", $"/{s}/{n}"),
                ("Exact", { } s, null) => ("prefix", $"/{s}"),
                ("Exact", null, { } n) => ("regex", $"^/[^/]+/{Regex.Escape(n)}$"),
                ("Exact", null, null) => ("prefix", "/"),
                // Grouped: an alternation in either regex ("Get|List") must not swallow the rest of the pattern.
                ("RegularExpression", _, _) => ("regex", $"^/(?:{service ?? "[^/]+"})/(?:{name ?? "[^/]+"})$"),
                _ => ("", ""),
            };
            if (kind.Length == 0 || (kind == "regex" && !IsRegex(path)))
            {
                Report(m, method, field + ".method", $"method match of type '{type}' cannot be imported: match not imported");
                return;
            }
        }
        var headers = new List<ValueCondition>();
        if (match is not null && !Conditions(m, match, "headers", field, headers, lowerNames: true))
            return;
        // GRPCRoute ranks a matching service above a matching method: a method of any service comes after the prefixes.
        var anyService = match is not null && Get(match, "method") is YamlMappingNode mm && Str(mm, "service") is null && kind == "regex";
        AddRoute(m, node, field, $"{rule}.{index}", kind, path, [], headers, [], hosts, backends, null, null, anyService ? 3 : null, filters: filters);
    }

    /// <summary>
    /// Header or query matches, <c>Exact</c> or <c>RegularExpression</c> (RE2, checked as validate does); a match that
    /// cannot be carried over would be lost, and the route broadened, so the whole match is dropped.
    /// </summary>
    private bool Conditions(Manifest m, YamlMappingNode match, string key, string field, List<ValueCondition> into, bool lowerNames)
    {
        if (Get(match, key) is not YamlSequenceNode list)
            return true;
        for (var i = 0; i < list.Children.Count; i++)
        {
            if (list.Children[i] is not YamlMappingNode h)
                continue;
            var type = Str(h, "type") ?? "Exact";
            var name = Str(h, "name") ?? "";
            var value = Str(h, "value") ?? "";
            if (type is not ("Exact" or "RegularExpression"))
            {
                Report(m, Get(h, "type") ?? h, $"{field}.{key}[{i}]", $"{type} match on '{name}' has no equivalent: match not imported",
                    "without it the route would match more requests than the manifest says");
                return false;
            }
            if (type == "RegularExpression" && (value.Length == 0 || !IsRegex(value)))
            {
                Report(m, Get(h, "value") ?? h, $"{field}.{key}[{i}].value", $"'{value}' is not a regular expression Envoy accepts: match not imported",
                    "Envoy uses RE2 syntax (no look-around or back-references)");
                return false;
            }
            // Host too: a gateway file refuses it in headers (Envoy would compare the authority exactly as sent).
            if (lowerNames && (!HeaderPattern().IsMatch(name.ToLowerInvariant()) || name.Equals("host", StringComparison.OrdinalIgnoreCase)))
            {
                Report(m, Get(h, "name") ?? h, $"{field}.{key}[{i}].name", $"'{name}' cannot be matched as a header in a gateway file: match not imported",
                    "pseudo-headers and the host are matched with the route's hosts, not headers");
                return false;
            }
            into.Add(new ValueCondition(lowerNames ? name.ToLowerInvariant() : name,
                type == "Exact" ? ValueMatchKind.Exact : ValueMatchKind.Regex, value));
        }
        return true;
    }

    /// <summary>
    /// A RequestHeaderModifier or ResponseHeaderModifier as the route's <c>request_headers</c> / <c>response_headers</c>
    /// (flow YAML). Entries a gateway file refuses — identity headers in the request (authz alone sets them),
    /// pseudo-headers, host, hop-by-hop headers, empty values, a header in two lists — are reported and left out.
    /// </summary>
    private string? HeaderModifier(Manifest m, YamlMappingNode modifier, string field, bool request)
    {
        var identity = new[] { IdentityHeaders.Default.Tenant, IdentityHeaders.Default.Subject, IdentityHeaders.Default.Client };
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var parts = new List<string>();
        foreach (var list in new[] { "set", "add", "remove" })
        {
            if (Get(modifier, list) is not YamlSequenceNode items)
                continue;
            var entries = new List<string>();
            for (var i = 0; i < items.Children.Count; i++)
            {
                var item = items.Children[i];
                var f = $"{field}.{list}[{i}]";
                var name = ((list == "remove" ? (item as YamlScalarNode)?.Value : item is YamlMappingNode e ? Str(e, "name") : null) ?? "").ToLowerInvariant();
                var value = item is YamlMappingNode map ? Str(map, "value") ?? "" : "";
                string? problem = name.StartsWith(':') || name == "host" ? $"'{name}' cannot be edited by a route (Envoy refuses it)"
                    : !HeaderPattern().IsMatch(name) ? $"'{name}' is not a header name"
                    : GatewayLoader.HopByHopHeaders.Contains(name) ? $"'{name}' is a hop-by-hop or framing header Envoy sets itself"
                    : request && (list == "remove" ? identity.Contains(name, StringComparer.Ordinal) : GatewayLoader.IdentityHeaderLike(name, identity) is not null)
                        ? $"'{name}' is an identity header: only authz sets it"
                    : list != "remove" && (value.Length == 0 || value.Any(char.IsControl)) ? $"the value of '{name}' is empty or holds a control character"
                    : !seen.Add(name) ? $"'{name}' is edited twice"
                    : null;
                if (problem is not null)
                {
                    Report(m, item, f, problem + ": not applied", name == "host" ? "URLRewrite hostname becomes rewrite_host" : null);
                    continue;
                }
                entries.Add(list == "remove" ? Scalar(name) : Scalar(name) + ": " + Scalar(value));
            }
            if (entries.Count > 0)
                parts.Add(list == "remove" ? $"remove: [{string.Join(", ", entries)}]" : $"{list}: {{ {string.Join(", ", entries)} }}");
        }
        return parts.Count == 0 ? null : "{ " + string.Join(", ", parts) + " }";
    }

    private string? BackendRef(Manifest m, YamlMappingNode r, string field, bool http2)
    {
        var group = Str(r, "group") ?? "";
        var kind = Str(r, "kind") ?? "Service";
        if (group.Length > 0 || kind != "Service")
        {
            Report(m, Get(r, "kind") ?? r, field, $"backend of kind {(group.Length > 0 ? group + "/" : "")}{kind} is not imported", "only Service backends have an address");
            return null;
        }
        if (Get(r, "filters") is { } filters)
            Report(m, filters, field + ".filters", "per-backend filters have no equivalent in a gateway file: not applied");
        if (Str(r, "name") is not { } name || Str(r, "port") is not { } port)
        {
            Report(m, r, field, "needs name and port: not imported");
            return null;
        }
        return AddBackend(m, r, field, Str(r, "namespace") ?? m.Namespace, name, port, http2);
    }

    // ---- shared ----------------------------------------------------------------------------------------------------

    private bool Host(Manifest m, YamlNode node, string host, string field, List<string> into)
    {
        var normal = host.ToLowerInvariant().TrimEnd('.');
        if (!HostPattern().IsMatch(normal))
        {
            Report(m, node, field, host.StartsWith('*') ? $"wildcard host '{host}' has no equivalent: not imported" : $"'{host}' is not a host name: not imported",
                host.StartsWith('*') ? "the gateway file matches exact hosts: list them" : null);
            return false;
        }
        if (!into.Contains(normal))
            into.Add(normal);
        return true;
    }

    private string? AddBackend(Manifest m, YamlNode node, string field, string ns, string service, string port, bool http2 = false)
    {
        if (!int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var number) || number is < 1 or > 65535)
        {
            Report(m, node, field + ".port", $"'{port}' is not a port number: not imported");
            return null;
        }
        if (!HostPattern().IsMatch(service) || !HostPattern().IsMatch(ns))
        {
            Report(m, node, field + ".name", $"'{ns}/{service}' is not a Service name: not imported");
            return null;
        }
        // gRPC backends speak HTTP/2 upstream: a cluster of their own, so one Service can serve both kinds of route.
        var name = Name($"{ns}.{service}.{number.ToString(CultureInfo.InvariantCulture)}{(http2 ? ".grpc" : "")}");
        if (!_backends.ContainsKey(name))
        {
            _backends.Add(name, new Backend(name, $"http://{service}.{ns}.svc.cluster.local:{number.ToString(CultureInfo.InvariantCulture)}",
                $"Service {ns}/{service} port {number.ToString(CultureInfo.InvariantCulture)}{(http2 ? " (gRPC)" : "")}, first named at {Where(m.File, node)}", http2));
        }
        return name;
    }

    private void AddRoute(Manifest m, YamlNode node, string field, string suffix, string kind, string path, IReadOnlyList<string> methods,
        IReadOnlyList<ValueCondition> headers, IReadOnlyList<ValueCondition> query, IReadOnlyList<string> hosts,
        IReadOnlyList<KeyValuePair<string, int>> backends, string? rewrite, string? timeout, int? rank = null, string? cors = null, RuleFilters? filters = null)
    {
        if (kind != "regex" && path.AsSpan().IndexOfAny('?', '#') >= 0)
        {
            // Not a path a request can have (Gateway API's own schema refuses it), and Envoy refuses it in a prefix.
            Report(m, node, field, $"path '{path}' contains '?' or '#': not imported", "a path match covers the path only; the query string is matched apart");
            return;
        }
        if (kind == "prefix" && path.Length > 1)
            path = path.TrimEnd('/');
        var sortedHosts = hosts.Order(StringComparer.Ordinal).ToArray();
        _routes.Add(new Route(Name($"{m.Namespace}.{m.Name}.{suffix}"), $"{Where(m.File, node)}: {m.Id} {field}", kind, path, methods,
            headers.OrderBy(h => h.Name, StringComparer.Ordinal).ToArray(), query.OrderBy(q => q.Name, StringComparer.Ordinal).ToArray(), sortedHosts,
            backends.ToArray(), rewrite, timeout, m.NoAuth, _routes.Count, m, node, field,
            rank ?? kind switch { "path" => 0, "regex" => 1, _ => 2 }, cors, filters));
    }

    private ImportResult Finish()
    {
        // First match wins in a gateway file; Ingress and Gateway API pick the most specific match instead. Sorting by
        // specificity gives the same answer: hosts named before any host, exact before regex before prefix, longer
        // prefixes first, more conditions first, fewer hosts first, then the input order.
        var ordered = _routes
            .OrderBy(r => r.Hosts.Count == 0)
            .ThenBy(r => r.Rank)
            .ThenByDescending(r => r.Path.Length)
            .ThenByDescending(r => r.Conditions)
            .ThenBy(r => r.Hosts.Count)
            .ThenBy(r => r.Order)
            .ToList();
        var kept = new List<Route>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var route in ordered)
        {
            if (kept.FirstOrDefault(k => Covers(k, route)) is { } earlier)
            {
                Report(route.Manifest.File, route.Node, route.Field,
                    $"matches only requests that {earlier.Manifest.Id} ({Where(earlier.Manifest.File, earlier.Node)}) already matches: not imported",
                    "Ingress and Gateway API give such a conflict to the oldest object; here the first file given wins");
                continue;
            }
            var name = route.Name;
            for (var n = 2; !names.Add(name); n++)
                name = Name($"{route.Name}-{n.ToString(CultureInfo.InvariantCulture)}");
            kept.Add(route with { Name = name });
        }
        var used = _backends.Keys.Count(b => kept.Any(r => r.Backends.Any(x => x.Key == b)));
        return new ImportResult(Write(kept), _unmapped, kept.Count, used);
    }

    /// <summary>True when every request <paramref name="b"/> matches is matched by <paramref name="a"/>: the loader's shadowing rule.</summary>
    private static bool Covers(Route a, Route b) => a.Match.Covers(b.Match);

    private string Write(List<Route> routes)
    {
        var w = new StringBuilder();
        w.Append("# Generated by `legate import` from: ").Append(string.Join(", ", _files)).Append('\n');
        w.Append("# Same manifests, same bytes. Check it with `legate validate`, turn it into Envoy's configuration with `legate render`.\n");
        w.Append("# Backends are the manifests' Services by cluster DNS name (http://<service>.<namespace>.svc.cluster.local:<port>).\n");
        w.Append("#\n");
        w.Append("# Auth is required by default: every imported route is checked by authz with default_policy below, except the\n");
        w.Append($"# routes of manifests annotated {AuthAnnotation}: none (auth: none). The policy accepts JWTs: add jwt_providers\n");
        w.Append($"# (and list them under tenants.{TenantName}.jwt) or an api_keys store before serving traffic, or every request gets 401.\n");
        w.Append('\n');
        var hosts = routes.SelectMany(r => r.Hosts).Distinct().Order(StringComparer.Ordinal).ToArray();
        w.Append("tenants:\n");
        w.Append($"  {TenantName}:   # owns every host the manifests name; routes without hosts pin it\n");
        w.Append("    hosts: ").Append(List(hosts)).Append('\n');
        w.Append("\npolicies:\n");
        w.Append($"  {PolicyName}: {{ credentials: [jwt] }}\n");
        w.Append($"default_policy: {PolicyName}\n");
        WriteListeners(w);
        w.Append("\nbackends:\n");
        foreach (var backend in _backends.Values.Where(b => routes.Any(r => r.Backends.Any(x => x.Key == b.Name))))
        {
            w.Append("  # ").Append(backend.Source).Append('\n');
            w.Append("  ").Append(backend.Name).Append(": { urls: [").Append(backend.Url).Append(backend.Http2 ? "], http2: true }\n" : "] }\n");
        }
        w.Append("\nroutes:\n");
        foreach (var r in routes)
        {
            w.Append("  # ").Append(r.Source).Append('\n');
            w.Append("  - name: ").Append(r.Name).Append('\n');
            w.Append("    match: { ").Append(r.Kind).Append(": ").Append(Scalar(r.Path));
            if (r.Methods.Count > 0)
                w.Append(", methods: ").Append(List(r.Methods));
            if (r.Headers.Count > 0)
                w.Append(", headers: ").Append(Pairs(r.Headers));
            if (r.Query.Count > 0)
                w.Append(", query: ").Append(Pairs(r.Query));
            if (r.Hosts.Count > 0)
                w.Append(", hosts: ").Append(List(r.Hosts));
            w.Append(" }\n");
            if (r.Backends.Count == 1)
            {
                w.Append("    backend: ").Append(r.Backends[0].Key).Append('\n');
            }
            else
            {
                w.Append("    backends:\n");
                foreach (var (name, weight) in r.Backends)
                    w.Append("      - { name: ").Append(name).Append(", weight: ").Append(weight.ToString(CultureInfo.InvariantCulture)).Append(" }\n");
            }
            if (r.Rewrite is not null)
                w.Append("    rewrite: ").Append(Scalar(r.Rewrite)).Append('\n');
            if (r.Timeout is not null)
                w.Append("    timeout: ").Append(r.Timeout).Append('\n');
            if (r.Filters?.HostRewrite is { } host)
                w.Append("    rewrite_host: ").Append(Scalar(host)).Append('\n');
            if (r.Cors is not null)
                w.Append("    cors: ").Append(r.Cors).Append('\n');
            if (r.Filters?.RequestHeaders is { } request)
                w.Append("    request_headers: ").Append(request).Append('\n');
            if (r.Filters?.ResponseHeaders is { } response)
                w.Append("    response_headers: ").Append(response).Append('\n');
            if (r.NoAuth)
                w.Append($"    auth: none   # {AuthAnnotation}: none\n");
            else if (r.Hosts.Count == 0)
                w.Append($"    tenant: {TenantName}   # no host in the manifest: serves every host\n");
        }
        return w.ToString();
    }

    /// <summary>
    /// The listeners, when a Gateway or Ingress TLS asks for any (else the gateway file's default plain 8080): Ingress
    /// TLS keeps the plain 8080 listener beside its TLS one, as an Ingress serves plain HTTP too.
    /// </summary>
    private void WriteListeners(StringBuilder w)
    {
        if (_listeners.Count == 0)
            return;
        if (!_gateways)
            _listeners.TryAdd(HttpPort, new Listener("http", HttpPort, false, [], "the default listener"));
        var names = new HashSet<string>(StringComparer.Ordinal);
        w.Append("\nlisteners:\n");
        foreach (var l in _listeners.Values)
        {
            var name = l.Name;
            for (var n = 2; !names.Add(name); n++)
                name = $"{l.Name}{n.ToString(CultureInfo.InvariantCulture)}";
            w.Append("  # ").Append(l.Source).Append('\n');
            if (!l.Tls)
            {
                w.Append("  - { name: ").Append(name).Append(", port: ").Append(l.Port.ToString(CultureInfo.InvariantCulture)).Append(" }\n");
                continue;
            }
            w.Append("  - name: ").Append(name).Append('\n');
            w.Append("    port: ").Append(l.Port.ToString(CultureInfo.InvariantCulture)).Append('\n');
            w.Append("    tls:   # mount each Secret into Envoy at /etc/legate-tls/<secret>/ (the chart: envoy.tlsSecrets)\n");
            w.Append("      certificates:\n");
            foreach (var secret in l.Secrets)
            {
                var folder = SecretFolder(secret);
                w.Append("        - { cert_file: ").Append(Scalar(folder + "/tls.crt")).Append(", key_file: ").Append(Scalar(folder + "/tls.key"))
                    .Append(" }   # Secret ").Append(_secrets[secret]).Append('/').Append(secret).Append('\n');
            }
        }
    }

    private void Report(Manifest m, YamlNode node, string field, string problem, string? hint = null)
        => Report(m.File, node, field, $"{problem} ({m.Id})", hint);

    private void Report(string file, YamlNode node, string field, string problem, string? hint = null)
        => _unmapped.Add(new GatewayError(file, (int)node.Start.Line, (int)node.Start.Column, field, problem, hint));

    private static string Where(string file, YamlNode node) => $"{file}:{node.Start.Line.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>A gateway-file name (at most 64 characters; a long one keeps its start and gets a hash for uniqueness).</summary>
    private static string Name(string raw)
    {
        var name = raw.ToLowerInvariant();
        if (name.Length <= 64)
            return name;
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(name)))[..8];
        return name[..55].TrimEnd('.', '-', '_') + "-" + hash;
    }

    /// <summary>A Gateway API duration (1h30m, 500ms) in the gateway file's form (one whole number and one unit); null for 0 or garbage.</summary>
    internal static string? Duration(string text)
    {
        var parts = DurationPart().Matches(text);
        if (parts.Count == 0 || string.Concat(parts.Select(p => p.Value)) != text)
            return null;
        long ms = 0;
        foreach (Match part in parts)
        {
            var n = long.Parse(part.Groups[1].Value, CultureInfo.InvariantCulture);
            ms += part.Groups[2].Value switch { "h" => n * 3_600_000, "m" => n * 60_000, "s" => n * 1000, _ => n };
        }
        if (ms == 0)
            return null;
        var (value, unit) = ms % 3_600_000 == 0 ? (ms / 3_600_000, "h") : ms % 60_000 == 0 ? (ms / 60_000, "m") : ms % 1000 == 0 ? (ms / 1000, "s") : (ms, "ms");
        return value.ToString(CultureInfo.InvariantCulture) + unit;
    }

    private static bool IsRegex(string pattern) => Re2Syntax.Problem(pattern) is null;

    private static string List(IEnumerable<string> items) => "[" + string.Join(", ", items.Select(Scalar)) + "]";

    private static string Pairs(IEnumerable<ValueCondition> conditions)
        => "{ " + string.Join(", ", conditions.Select(c => Scalar(c.Name) + ": " + (c.Kind == ValueMatchKind.Regex ? "{ regex: " + Scalar(c.Value) + " }" : Scalar(c.Value)))) + " }";

    /// <summary>A YAML scalar: plain when it cannot be read as anything but this string, else double-quoted.</summary>
    private static string Scalar(string value)
        => PlainScalar().IsMatch(value) && !NotPlain().IsMatch(value) ? value
            : "\"" + value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";

    private static YamlNode? Get(YamlMappingNode map, string key) => map.Children.TryGetValue(new YamlScalarNode(key), out var value) ? value : null;

    private static string? Str(YamlMappingNode map, string key) => Get(map, key) is YamlScalarNode { Value: { } v } ? v : null;

    [GeneratedRegex("^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\\z")]
    private static partial Regex HostPattern();

    [GeneratedRegex("^[a-z0-9!#$%&'*+.^_`|~-]{1,128}\\z")]
    private static partial Regex HeaderPattern();

    [GeneratedRegex("[\\^$()\\[\\]{}|+?\\\\]")]
    private static partial Regex RegexChars();

    [GeneratedRegex("([0-9]{1,5})(h|ms|m|s)")]
    private static partial Regex DurationPart();

    [GeneratedRegex("^[A-Za-z0-9/][A-Za-z0-9/_.@-]*\\z")]
    private static partial Regex PlainScalar();

    [GeneratedRegex("^([0-9._+-]+|(?i:y|n|yes|no|true|false|on|off|null|~))\\z")]
    private static partial Regex NotPlain();
}

using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using Legate.Authz.Policies;
using Legate.Gateway.Model;
using YamlDotNet.RepresentationModel;
using static Legate.Hosting.Rules.YamlNodes;
using Node = System.Collections.Generic.OrderedDictionary<string, object>;

namespace Legate.Gateway.Render;

/// <summary>
/// Envoy's configuration: the bootstrap (admin on loopback, the three Legate services as static gRPC clusters with
/// health checks, the metrics service stats sink, the ready and stats listeners, path-based LDS/CDS) and the backend
/// clusters and listeners, with the HTTP filters in the order CORS → ext_authz → ratelimit → router.
/// </summary>
internal static class EnvoyConfig
{
    public const string AuthzCluster = "legate_authz";
    public const string RateLimitCluster = "legate_ratelimit";
    public const string StatSinkCluster = "legate_statsink";
    public const string AdminCluster = "legate_admin";
    public const string CatchAllRoute = "legate_not_found";
    public const int AdminPort = 19000;
    public const int StatsPort = 19001;
    public const int ReadyPort = 19003;

    public const string ExtAuthzFilter = "envoy.filters.http.ext_authz";
    public const string RateLimitFilter = "envoy.filters.http.ratelimit";
    public const string CorsFilter = "envoy.filters.http.cors";
    public const string RouterFilter = "envoy.filters.http.router";

    private const string Hcm = "envoy.filters.network.http_connection_manager";
    private const string HcmType = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
    private const string RouterType = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
    private const string ClusterType = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
    private const string ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener";
    private const string HttpOptions = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
    private const string SecretType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
    private const string DownstreamTlsType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
    private const string UpstreamTlsType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";

    /// <summary>The folder of the SDS files under <c>OUT/envoy</c> (and under Envoy's envoy dir).</summary>
    public const string SdsDir = "sds";

    public static string Bootstrap(GatewayConfig config, RenderOptions options, string header)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(options);
        var s = config.Services;
        var clusters = new List<object>
        {
            ServiceCluster(AuthzCluster, s.Authz, "authz", s.Tls?.AuthzSni, s.Tls, options),
            ServiceCluster(RateLimitCluster, s.RateLimit, "ratelimit", s.Tls?.RateLimitSni, s.Tls, options),
            ServiceCluster(StatSinkCluster, s.StatSink, "statsink", s.Tls?.StatSinkSni, s.Tls, options),
            Yaml.Map(
                ("name", AdminCluster),
                ("type", "STATIC"),
                ("connect_timeout", "0.25s"),
                ("load_assignment", LoadAssignment(AdminCluster, [new ServiceAddress("127.0.0.1", AdminPort)]))),
        };
        var listeners = new List<object> { ReadyListener(), StatsListener() };
        object? dynamicResources = null;
        if (options.Static)
        {
            clusters.AddRange(BackendClusters(config, options));
            listeners.AddRange(Listeners(config, options));
        }
        else
        {
            var dir = options.EnvoyDir.TrimEnd('/') + "/dynamic";
            dynamicResources = Yaml.Map(
                ("cds_config", PathSource($"{dir}/cds.yaml", dir)),
                ("lds_config", PathSource($"{dir}/lds.yaml", dir)));
        }

        var document = Yaml.Map(
            ("node", Yaml.Map(("id", "legate"), ("cluster", "legate"))),
            ("admin", Yaml.Map(("address", SocketAddress("127.0.0.1", AdminPort)))),
            ("static_resources", Yaml.Map(("listeners", listeners), ("clusters", clusters))),
            ("dynamic_resources", dynamicResources),
            // Envoy refuses a regex whose RE2 program is larger than 100 by default, a size no one can predict from
            // the regex (validate checks RE2's syntax, not its size), so a route regex validate accepted could still
            // be refused with the whole listener. Operators write these regexes, not clients: no hard limit, and a
            // warning (the re2.exceeded_warn_level counter, and a log line) for the large ones. The admin layer
            // keeps /runtime_modify working, as without a layered_runtime.
            ("layered_runtime", Yaml.Map(("layers", new List<object>
            {
                Yaml.Map(("name", "legate"), ("static_layer", Yaml.Map(
                    ("re2.max_program_size.error_level", uint.MaxValue),
                    ("re2.max_program_size.warn_level", 1000)))),
                Yaml.Map(("name", "admin"), ("admin_layer", Yaml.Map())),
            }))),
            ("stats_flush_interval", Yaml.Duration(s.StatsFlushInterval)),
            ("stats_sinks", new List<object>
            {
                Yaml.Map(
                    ("name", "envoy.stat_sinks.metrics_service"),
                    ("typed_config", Yaml.Map(
                        ("@type", "type.googleapis.com/envoy.config.metrics.v3.MetricsServiceConfig"),
                        ("transport_api_version", "V3"),
                        // A long-lived client stream: no GrpcService timeout.
                        ("grpc_service", Yaml.Map(("envoy_grpc", Yaml.Map(("cluster_name", StatSinkCluster))))),
                        // Cumulative counters (Envoy's default, said explicitly because statsink's CounterMode must match):
                        // a lost flush loses nothing, and a stream that reconnects to another statsink replica
                        // carries the whole value there instead of restarting from zero.
                        ("report_counters_as_deltas", false),
                        ("emit_tags_as_labels", true)))),
            }));
        return header + Yaml.Serialize(document);
    }

    public static string Cds(GatewayConfig config, RenderOptions options, string header)
        => header + Yaml.Serialize(Yaml.Map(("resources", BackendClusters(config, options).Select(c => Resource(ClusterType, c)).ToList())));

    public static string Lds(GatewayConfig config, RenderOptions options, string header)
        => header + Yaml.Serialize(Yaml.Map(("resources", Listeners(config, options).Select(l => Resource(ListenerType, l)).ToList())));

    /// <summary>
    /// One file-based SDS resource per listener certificate and client CA, and for <c>services.tls</c> Envoy's client
    /// certificate and the services' CA (Envoy takes exactly one secret per SDS source), by secret name. Envoy re-reads the files a secret names when their folder sees a move, which is how
    /// cert-manager and Kubernetes Secret volumes swap them (the <c>..data</c> symlink), so a rotated certificate is
    /// served without a restart; with <c>watched_directory</c> it reads chain and key together and checks neither
    /// changed in between, so it never pairs an old chain with a new key.
    /// </summary>
    public static IEnumerable<(string Name, string Text)> Secrets(GatewayConfig config, string header)
    {
        ArgumentNullException.ThrowIfNull(config);
        foreach (var listener in config.Listeners)
        {
            if (listener.Tls is not { } tls)
                continue;
            for (var i = 0; i < tls.Certificates.Count; i++)
                yield return Secret(CertificateSecret(listener.Name, i), CertificateContent(tls.Certificates[i]));
            if (tls.ClientCaFile is { } ca)
                yield return Secret(ClientCaSecret(listener.Name), CaContent(ca));
        }
        if (config.Services.Tls is { } services)
        {
            if (services.Client is { } client)
                yield return Secret(ServicesClientSecret, CertificateContent(client));
            yield return Secret(ServicesCaSecret, CaContent(services.CaFile));
        }

        (string, string) Secret(string name, (string Key, object Value) content)
            => (name, header + Yaml.Serialize(Yaml.Map(("resources", new List<object> { Yaml.Map(("@type", SecretType), ("name", name), content) }))));

        static (string, object) CertificateContent(TlsCertificateFiles files)
        {
            var (cert, key) = (files.CertFile, files.KeyFile);
            // Chain and key in different folders: Envoy watches each file's folder and reads each alone.
            var watched = Folder(cert) == Folder(key) ? Yaml.Map(("path", Folder(cert))) : null;
            return ("tls_certificate", Yaml.Map(
                ("certificate_chain", Yaml.Map(("filename", cert))),
                ("private_key", Yaml.Map(("filename", key))),
                ("watched_directory", watched)));
        }

        static (string, object) CaContent(string ca) => ("validation_context", Yaml.Map(
            ("trusted_ca", Yaml.Map(("filename", ca))),
            ("watched_directory", Yaml.Map(("path", Folder(ca))))));

        static string Folder(string file) => file[..Math.Max(1, file.LastIndexOf('/'))];
    }

    /// <summary>
    /// The SDS secret (and file name) of Envoy's client certificate for the services. No listener's secret can take
    /// this name or <see cref="ServicesCaSecret"/>: those end in <c>-cert-N</c> or <c>-client-ca</c>.
    /// </summary>
    public const string ServicesClientSecret = "legate_services-client";

    /// <summary>The SDS secret (and file name) of the CA bundle the services' certificates are checked against.</summary>
    public const string ServicesCaSecret = "legate_services-ca";

    /// <summary>The SDS secret (and file name, without <c>.yaml</c>) of a listener's certificate <paramref name="index"/>.</summary>
    public static string CertificateSecret(string listener, int index) => $"{listener}-cert-{index.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>The SDS secret (and file name, without <c>.yaml</c>) of a listener's client CA.</summary>
    public static string ClientCaSecret(string listener) => $"{listener}-client-ca";

    /// <summary>An xDS resource: the object with its type URL first.</summary>
    private static Node Resource(string type, Node value)
    {
        var resource = Yaml.Map(("@type", type));
        foreach (var (key, item) in value)
            resource.Add(key, item);
        return resource;
    }

    /// <summary>The CA file a TLS backend's certificate is checked against, as Envoy sees it.</summary>
    public static string CaFileName(string backend) => $"{backend}-ca.pem";

    private static Node PathSource(string path, string dir) => Yaml.Map(
        ("resource_api_version", "V3"),
        ("path_config_source", Yaml.Map(
            ("path", path),
            // Also catches a Kubernetes ConfigMap's symlink swap, which a watch on the file itself misses.
            ("watched_directory", Yaml.Map(("path", dir))))));

    private static Node ServiceCluster(string name, ServiceAddress address, string healthService, string? sni, ServiceLinkTls? tls, RenderOptions options) => Yaml.Map(
        ("name", name),
        ("type", IsIp(address.Host) ? "STATIC" : "STRICT_DNS"),
        ("connect_timeout", "1s"),
        ("typed_extension_protocol_options", Http2Options()),
        ("health_checks", new List<object>
        {
            Yaml.Map(
                ("timeout", "1s"),
                ("interval", "5s"),
                ("unhealthy_threshold", 2),
                ("healthy_threshold", 1),
                ("grpc_health_check", Yaml.Map(("service_name", healthService)))),
        }),
        // Health checks use the cluster's transport socket, so they go over this TLS too, with its ALPN (h2).
        ("transport_socket", tls is null ? null : ServiceTls(address, sni, tls, options)),
        ("load_assignment", LoadAssignment(name, [address])));

    /// <summary>
    /// TLS to a Legate service: its certificate must chain to the services' CA and carry the service's name
    /// (<c>sni</c>, else the address's host); Envoy presents its client certificate when one is set (mutual TLS).
    /// Both come from SDS files as a listener's do, so rotated files are used without a restart. The name check is
    /// per cluster while the CA is shared, hence the combined validation context. ALPN h2: the services speak HTTP/2
    /// only, and Kestrel serves HTTP/2 over TLS only to a client that negotiated it.
    /// </summary>
    private static Node ServiceTls(ServiceAddress address, string? sni, ServiceLinkTls tls, RenderOptions options) => Yaml.Map(
        ("name", "envoy.transport_sockets.tls"),
        ("typed_config", Yaml.Map(
            ("@type", UpstreamTlsType),
            ("sni", sni ?? (IsIp(address.Host) ? null : address.Host)),
            ("common_tls_context", Yaml.Map(
                ("tls_certificate_sds_secret_configs", tls.Client is null ? null : new List<object> { SdsSecret(ServicesClientSecret, options) }),
                ("combined_validation_context", Yaml.Map(
                    ("default_validation_context", Yaml.Map(("match_typed_subject_alt_names", ServerNames(sni, [address.Host])))),
                    ("validation_context_sds_secret_config", SdsSecret(ServicesCaSecret, options)))),
                ("alpn_protocols", new List<object> { "h2" }))))));

    private static Node Http2Options() => Yaml.Map(
        (HttpOptions, Yaml.Map(
            ("@type", "type.googleapis.com/" + HttpOptions),
            ("explicit_http_config", Yaml.Map(("http2_protocol_options", Yaml.Map()))))));

    private static Node LoadAssignment(string cluster, IEnumerable<ServiceAddress> endpoints) => Yaml.Map(
        ("cluster_name", cluster),
        ("endpoints", new List<object>
        {
            Yaml.Map(("lb_endpoints", endpoints.Select(e => (object)Yaml.Map(("endpoint", Yaml.Map(("address", SocketAddress(e.Host, e.Port))))))
                .ToList())),
        }));

    private static Node SocketAddress(string host, int port)
        => Yaml.Map(("socket_address", Yaml.Map(("address", host), ("port_value", port))));

    private static bool IsIp(string host) => IPAddress.TryParse(host, out _);

    private static Node HcmFilter(string statPrefix, object routeConfig, List<object> httpFilters) => Yaml.Map(
        ("name", Hcm),
        ("typed_config", Yaml.Map(
            ("@type", HcmType),
            ("stat_prefix", statPrefix),
            ("route_config", routeConfig),
            ("http_filters", httpFilters))));

    private static Node Router() => Yaml.Map(("name", RouterFilter), ("typed_config", Yaml.Map(("@type", RouterType))));

    private static Node ReadyListener() => Yaml.Map(
        ("name", "ready"),
        ("address", SocketAddress("0.0.0.0", ReadyPort)),
        ("filter_chains", new List<object>
        {
            Yaml.Map(("filters", new List<object>
            {
                HcmFilter("ready",
                    Yaml.Map(("name", "ready"), ("virtual_hosts", new List<object>
                    {
                        Yaml.Map(("name", "ready"), ("domains", new List<object> { "*" }), ("routes", new List<object>
                        {
                            Yaml.Map(("match", Yaml.Map(("prefix", "/"))), ("direct_response", Yaml.Map(("status", 404)))),
                        })),
                    })),
                    [
                        // 200 while Envoy is live, 503 once it drains: answered before routing.
                        Yaml.Map(("name", "envoy.filters.http.health_check"), ("typed_config", Yaml.Map(
                            ("@type", "type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck"),
                            ("pass_through_mode", false),
                            ("headers", new List<object> { Yaml.Map(("name", ":path"), ("string_match", Yaml.Map(("exact", "/ready")))) })))),
                        Router(),
                    ]),
            })),
        }));

    private static Node StatsListener() => Yaml.Map(
        ("name", "stats"),
        ("address", SocketAddress("0.0.0.0", StatsPort)),
        ("filter_chains", new List<object>
        {
            Yaml.Map(("filters", new List<object>
            {
                // Only /stats/prometheus of the admin API is exposed; the rest stays on loopback.
                HcmFilter("stats",
                    Yaml.Map(("name", "stats"), ("virtual_hosts", new List<object>
                    {
                        Yaml.Map(("name", "stats"), ("domains", new List<object> { "*" }), ("routes", new List<object>
                        {
                            Yaml.Map(("match", Yaml.Map(("path", "/stats/prometheus"))), ("route", Yaml.Map(("cluster", AdminCluster)))),
                            Yaml.Map(("match", Yaml.Map(("prefix", "/"))), ("direct_response", Yaml.Map(("status", 404)))),
                        })),
                    })),
                    [Router()]),
            })),
        }));

    // ---- backends --------------------------------------------------------------------------------------------------

    private static List<Node> BackendClusters(GatewayConfig config, RenderOptions options)
    {
        var list = new List<Node>();
        foreach (var backend in config.Backends)
        {
            object? transport = null;
            if (backend.Tls)
            {
                var ca = backend.CaFile is null ? options.SystemCaFile : $"{options.EnvoyDir.TrimEnd('/')}/certs/{CaFileName(backend.Name)}";
                transport = Yaml.Map(
                    ("name", "envoy.transport_sockets.tls"),
                    ("typed_config", Yaml.Map(
                        ("@type", "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"),
                        ("sni", backend.Sni ?? (IsIp(backend.Endpoints[0].Host) ? null : backend.Endpoints[0].Host)),
                        ("common_tls_context", Yaml.Map(
                            ("validation_context", Yaml.Map(
                                ("trusted_ca", Yaml.Map(("filename", ca))),
                                ("match_typed_subject_alt_names", ServerNames(backend.Sni, backend.Endpoints.Select(e => e.Host))))))))));
            }
            var cb = backend.CircuitBreakers;
            list.Add(Yaml.Map(
                ("name", backend.Name),
                ("type", backend.Endpoints.All(e => IsIp(e.Host)) ? "STATIC" : "STRICT_DNS"),
                ("connect_timeout", Yaml.Duration(backend.ConnectTimeout)),
                ("lb_policy", "ROUND_ROBIN"),
                ("typed_extension_protocol_options", backend.Http2 ? Http2Options() : null),
                ("circuit_breakers", cb is null ? null : Yaml.Map(("thresholds", new List<object>
                {
                    Yaml.Map(("priority", "DEFAULT"), ("max_connections", cb.MaxConnections), ("max_pending_requests", cb.MaxPendingRequests),
                        ("max_requests", cb.MaxRequests), ("max_retries", cb.MaxRetries)),
                }))),
                ("outlier_detection", backend.OutlierDetection is { } od ? Yaml.Map(
                    ("consecutive_5xx", od.Consecutive5xx),
                    ("interval", Yaml.Duration(od.Interval)),
                    ("base_ejection_time", Yaml.Duration(od.BaseEjectionTime)),
                    ("max_ejection_percent", od.MaxEjectionPercent)) : null),
                ("health_checks", backend.HealthCheck is { } hc ? new List<object>
                {
                    Yaml.Map(
                        ("timeout", Yaml.Duration(hc.Timeout)),
                        ("interval", Yaml.Duration(hc.Interval)),
                        ("unhealthy_threshold", hc.UnhealthyThreshold),
                        ("healthy_threshold", hc.HealthyThreshold),
                        // The cluster's protocol: an HTTP/2-only (gRPC) backend does not answer Envoy's default HTTP/1.1 check.
                        ("http_health_check", Yaml.Map(("path", hc.Path), ("codec_client_type", backend.Http2 ? "HTTP2" : null)))),
                } : null),
                ("transport_socket", transport),
                ("load_assignment", LoadAssignment(backend.Name, backend.Endpoints))));
        }
        return list;
    }

    /// <summary>
    /// The names an upstream's certificate must carry (a TLS backend's, a Legate service's): <paramref name="sni"/>,
    /// else the hosts it is reached at. Envoy checks only the chain without them, so any certificate the CA ever issued
    /// (with the system bundle: any public site's) would pass.
    /// </summary>
    private static List<object> ServerNames(string? sni, IEnumerable<string> hosts)
        => (sni is not null ? [sni] : hosts.Distinct(StringComparer.OrdinalIgnoreCase))
            .Select(name => (object)Yaml.Map(("san_type", IsIp(name) ? "IP_ADDRESS" : "DNS"), ("matcher", Yaml.Map(("exact", name)))))
            .ToList();

    // ---- listeners and routes --------------------------------------------------------------------------------------

    private static List<Node> Listeners(GatewayConfig config, RenderOptions options)
    {
        var list = new List<Node>();
        foreach (var listener in config.Listeners)
        {
            if (listener.HttpsRedirectPort is { } httpsPort)
            {
                list.Add(RedirectListener(listener, httpsPort));
                continue;
            }
            var hcm = Yaml.Map(
                ("name", Hcm),
                ("typed_config", Yaml.Map(
                    ("@type", HcmType),
                    ("stat_prefix", listener.Name),
                    ("codec_type", "AUTO"),
                    // The peer address is the client's: remote_address descriptors cannot be forged with X-Forwarded-For.
                    ("use_remote_address", true),
                    ("normalize_path", true),
                    ("merge_slashes", true),
                    ("path_with_escaped_slashes_action", "UNESCAPE_AND_REDIRECT"),
                    // api.acme.example. is api.acme.example, as for the loader and authz: the same virtual host, not "*".
                    ("strip_trailing_host_dot", true),
                    ("common_http_protocol_options", Yaml.Map(("headers_with_underscores_action", "REJECT_REQUEST"))),
                    ("early_header_mutation_extensions", new List<object> { IdentityHeaderRemoval(config) }),
                    ("http_filters", HttpFilters(config)),
                    ("route_config", Yaml.Map(("name", listener.Name), ("virtual_hosts", VirtualHosts(config)))))));
            list.Add(Yaml.Map(
                ("name", listener.Name),
                ("address", SocketAddress(listener.Address, listener.Port)),
                ("filter_chains", new List<object>
                {
                    Yaml.Map(("filters", new List<object> { hcm }), ("transport_socket", listener.Tls is { } tls ? DownstreamTls(listener.Name, tls, options) : null)),
                })));
        }
        return list;
    }

    /// <summary>
    /// TLS termination: one filter chain holding every certificate. Envoy picks the certificate whose DNS names match
    /// the client's SNI (exact, then wildcard; the first one when none matches or the client sends none), so there is
    /// no filter chain per host: that would copy the whole connection manager per host, and a host list kept beside
    /// the certificates could drift from the names they really carry.
    /// </summary>
    private static Node DownstreamTls(string listener, ListenerTlsConfig tls, RenderOptions options)
    {
        var certificates = Enumerable.Range(0, tls.Certificates.Count).Select(i => (object)SdsSecret(CertificateSecret(listener, i), options)).ToList();
        return Yaml.Map(
            ("name", "envoy.transport_sockets.tls"),
            ("typed_config", Yaml.Map(
                ("@type", DownstreamTlsType),
                ("common_tls_context", Yaml.Map(
                    ("tls_params", Yaml.Map(("tls_minimum_protocol_version", tls.MinVersion == TlsVersion.Tls13 ? "TLSv1_3" : "TLSv1_2"))),
                    ("tls_certificate_sds_secret_configs", certificates),
                    ("validation_context_sds_secret_config", tls.ClientCaFile is null ? null : SdsSecret(ClientCaSecret(listener), options)),
                    // The connection manager's codec (AUTO) follows what ALPN agreed.
                    ("alpn_protocols", new List<object> { "h2", "http/1.1" }))),
                ("require_client_certificate", tls.ClientCaFile is null ? null : true))));
    }

    private static Node SdsSecret(string name, RenderOptions options)
    {
        var dir = $"{options.EnvoyDir.TrimEnd('/')}/{SdsDir}";
        return Yaml.Map(("name", name), ("sds_config", PathSource($"{dir}/{name}.yaml", dir)));
    }

    /// <summary>
    /// A plain listener answering every request with a permanent redirect to https on <paramref name="httpsPort"/>,
    /// same host and path. 308 rather than 301 keeps the method and body (a POST stays a POST). No other filter runs:
    /// nothing reaches authz or a backend from here.
    /// </summary>
    private static Node RedirectListener(ListenerConfig listener, int httpsPort) => Yaml.Map(
        ("name", listener.Name),
        ("address", SocketAddress(listener.Address, listener.Port)),
        ("filter_chains", new List<object>
        {
            Yaml.Map(("filters", new List<object>
            {
                Yaml.Map(
                    ("name", Hcm),
                    ("typed_config", Yaml.Map(
                        ("@type", HcmType),
                        ("stat_prefix", listener.Name),
                        ("codec_type", "AUTO"),
                        ("use_remote_address", true),
                        ("route_config", Yaml.Map(("name", listener.Name), ("virtual_hosts", new List<object>
                        {
                            Yaml.Map(("name", "https_redirect"), ("domains", new List<object> { "*" }), ("routes", new List<object>
                            {
                                Yaml.Map(
                                    ("name", "https_redirect"),
                                    ("match", Yaml.Map(("prefix", "/"))),
                                    ("redirect", Yaml.Map(("https_redirect", true), ("port_redirect", httpsPort), ("response_code", "PERMANENT_REDIRECT")))),
                            })),
                        }))),
                        ("http_filters", new List<object> { Router() })))),
            })),
        }));

    private static List<object> HttpFilters(GatewayConfig config)
    {
        var s = config.Services;
        return
        [
            // CORS first, so a browser's preflight is answered before authentication.
            Yaml.Map(("name", CorsFilter), ("typed_config", Yaml.Map(("@type", "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors")))),
            Yaml.Map(("name", ExtAuthzFilter), ("typed_config", Yaml.Map(
                ("@type", "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"),
                ("transport_api_version", "V3"),
                ("grpc_service", Yaml.Map(("envoy_grpc", Yaml.Map(("cluster_name", AuthzCluster))), ("timeout", Yaml.Duration(s.AuthzTimeout)))),
                ("failure_mode_allow", s.AuthzFailOpen),
                ("status_on_error", Yaml.Map(("code", "ServiceUnavailable")))))),
            // After ext_authz: the descriptors are built from the tenant and client authz puts in the dynamic metadata.
            Yaml.Map(("name", RateLimitFilter), ("typed_config", Yaml.Map(
                ("@type", "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit"),
                ("domain", s.RateLimitDomain),
                ("timeout", Yaml.Duration(s.RateLimitTimeout)),
                ("failure_mode_deny", s.RateLimitFailClosed),
                ("enable_x_ratelimit_headers", "DRAFT_VERSION_03"),
                ("rate_limited_as_resource_exhausted", true),
                ("rate_limit_service", Yaml.Map(
                    ("transport_api_version", "V3"),
                    ("grpc_service", Yaml.Map(("envoy_grpc", Yaml.Map(("cluster_name", RateLimitCluster)))))))))),
            Yaml.Map(("name", RouterFilter), ("typed_config", Yaml.Map(("@type", RouterType), ("suppress_envoy_headers", true)))),
        ];
    }

    /// <summary>
    /// One virtual host per host some route names (its routes: those naming it and those naming no host, in file order),
    /// then the <c>*</c> host for the rest; each ends in the catch-all route.
    /// </summary>
    private static List<object> VirtualHosts(GatewayConfig config)
    {
        var list = new List<object>();
        var hosts = config.Routes.SelectMany(r => r.Match.Hosts).Distinct().Order(StringComparer.Ordinal).ToList();
        foreach (var host in hosts)
        {
            list.Add(VirtualHost(config, "host_" + host, [host, host + ":*"], config.Routes.Where(r => r.Match.Hosts.Count == 0 || r.Match.Hosts.Contains(host))));
        }
        list.Add(VirtualHost(config, "any_host", ["*"], config.Routes.Where(r => r.Match.Hosts.Count == 0)));
        return list;
    }

    private static Node VirtualHost(GatewayConfig config, string name, List<object> domains, IEnumerable<RouteConfig> routes)
    {
        var list = new List<Node>();
        foreach (var route in routes)
        {
            if (Preflight(route) is { } preflight)
                list.Add(preflight);
            list.Add(Route(config, route));
        }
        // Envoy skips ext_authz when no route matches: this route makes every request checked, then answered 404.
        list.Add(Yaml.Map(
            ("name", CatchAllRoute),
            ("match", Yaml.Map(("prefix", "/"))),
            ("direct_response", Yaml.Map(("status", 404), ("body", Yaml.Map(("inline_string", "{\"error\":\"not_found\"}\n"))))),
            ("typed_per_filter_config", Yaml.Map((ExtAuthzFilter, AuthzPerRoute(config.DefaultPolicy, null))))));
        return Yaml.Map(("name", name), ("domains", domains), ("routes", list));
    }

    private static Node AuthzPerRoute(string policy, string? tenant)
    {
        const string type = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute";
        if (policy == GatewayConfig.NoAuth)
            return Yaml.Map(("@type", type), ("disabled", true));
        return Yaml.Map(("@type", type), ("check_settings", Yaml.Map(("context_extensions", Yaml.Map(("policy", policy), ("tenant", tenant))))));
    }

    /// <summary>
    /// A browser's CORS preflight is an OPTIONS request without the route's own headers, so a route that matches methods
    /// or headers never sees it: it would end in the catch-all (authz, then 404) and the browser would refuse the call.
    /// This route, just before it, takes the preflights for the route's path (asking for one of its methods) and has the
    /// CORS filter answer each of them, allowed origin or not, so none reaches authz or the backend. It routes to the
    /// backend rather than answering directly because the CORS filter ignores direct-response routes.
    /// </summary>
    private static Node? Preflight(RouteConfig route)
    {
        var m = route.Match;
        if (route.Cors is not { } cors || (m.Headers.Count == 0 && (m.Methods.Count == 0 || m.Methods.Contains("OPTIONS"))))
            return null;
        // Non-empty, as the CORS filter takes them: with an empty one it passes the request on (to authz and the backend).
        var headers = new List<object>
        {
            HeaderMatch(":method", ["OPTIONS"]),
            NonEmpty("origin"),
            m.Methods.Count == 0 ? NonEmpty("access-control-request-method") : HeaderMatch("access-control-request-method", m.Methods),
        };
        var policy = Cors(cors);
        policy.Add("forward_not_matching_preflights", false);
        return Yaml.Map(
            ("name", route.Name + ".preflight"),
            ("match", PathMatch(m, headers)),
            ("route", Yaml.Map(("cluster", route.Backends[0].Name))),
            ("typed_per_filter_config", Yaml.Map((CorsFilter, policy), (ExtAuthzFilter, AuthzPerRoute(route.Auth, route.Tenant)))));
    }

    private static Node NonEmpty(string header) => Yaml.Map(("name", header), ("string_match", Yaml.Map(("safe_regex", Yaml.Map(("regex", ".+"))))));

    private static Node HeaderMatch(string name, IReadOnlyList<string> values) => Yaml.Map(("name", name), ("string_match", values.Count == 1
        ? Yaml.Map(("exact", values[0]))
        : Yaml.Map(("safe_regex", Yaml.Map(("regex", "^(" + string.Join('|', values) + ")$"))))));

    /// <summary>
    /// A route's header condition. A missing header is <c>present_match: true</c> inverted rather than
    /// <c>present_match: false</c>, whose meaning changed across Envoy versions (a false in a oneof also reads as unset).
    /// </summary>
    private static Node HeaderCondition(ValueCondition h) => h.Kind switch
    {
        ValueMatchKind.Present => Yaml.Map(("name", h.Name), ("present_match", true)),
        ValueMatchKind.Absent => Yaml.Map(("name", h.Name), ("present_match", true), ("invert_match", true)),
        _ => Yaml.Map(("name", h.Name), ("string_match", StringMatch(h)), ("invert_match", h.Invert ? true : null)),
    };

    private static Node StringMatch(ValueCondition m) => m.Kind switch
    {
        ValueMatchKind.Prefix => Yaml.Map(("prefix", m.Value)),
        ValueMatchKind.Suffix => Yaml.Map(("suffix", m.Value)),
        ValueMatchKind.Contains => Yaml.Map(("contains", m.Value)),
        ValueMatchKind.Regex => Yaml.Map(("safe_regex", Yaml.Map(("regex", m.Value)))),
        _ => Yaml.Map(("exact", m.Value)),
    };

    /// <summary>The route's path and query match, with <paramref name="headers"/> as its header conditions.</summary>
    private static Node PathMatch(RouteMatch m, List<object> headers)
    {
        var query = m.Query.Select(q => (object)(q.Kind == ValueMatchKind.Present
            ? Yaml.Map(("name", q.Name), ("present_match", true))
            : Yaml.Map(("name", q.Name), ("string_match", StringMatch(q))))).ToList();
        var match = m.Kind switch
        {
            PathMatchKind.Prefix when m.Path == "/" => Yaml.Map(("prefix", "/")),
            // Segment-wise: /orders matches /orders and /orders/1, never /ordersx.
            PathMatchKind.Prefix => Yaml.Map(("path_separated_prefix", m.Path)),
            PathMatchKind.Exact => Yaml.Map(("path", m.Path)),
            _ => Yaml.Map(("safe_regex", Yaml.Map(("regex", m.Path)))),
        };
        if (headers.Count > 0)
            match.Add("headers", headers);
        if (query.Count > 0)
            match.Add("query_parameters", query);
        return match;
    }

    private static Node Route(GatewayConfig config, RouteConfig route)
    {
        var m = route.Match;
        var headers = new List<object>();
        if (m.Methods.Count > 0)
            headers.Add(HeaderMatch(":method", m.Methods));
        foreach (var h in m.Headers)
            headers.Add(HeaderCondition(h));
        var match = PathMatch(m, headers);

        var action = route.Backends.Count == 1
            ? Yaml.Map(("cluster", route.Backends[0].Name))
            : Yaml.Map(("weighted_clusters", Yaml.Map(("clusters", route.Backends.Select(b => (object)Yaml.Map(("name", b.Name), ("weight", b.Weight))).ToList()))));
        if (route.Rewrite is { } rewrite)
        {
            if (m.Kind == PathMatchKind.Prefix && m.Path != "/" && rewrite.EndsWith('/'))
            {
                // prefix_rewrite would turn /orders/1 into //1 for /orders → /: also swallow the separator.
                action.Add("regex_rewrite", Yaml.Map(("pattern", Yaml.Map(("regex", "^" + Regex.Escape(m.Path) + "/?"))), ("substitution", rewrite)));
            }
            else if (m.Kind == PathMatchKind.Prefix && m.Path == "/" && !rewrite.EndsWith('/'))
            {
                // The matched prefix is the leading '/': keep it as the separator, or /x would become /v1x.
                action.Add("prefix_rewrite", rewrite + "/");
            }
            else
            {
                action.Add("prefix_rewrite", rewrite);
            }
        }
        if (route.HostRewrite is { } host)
            action.Add("host_rewrite_literal", host);
        else if (route.AutoHostRewrite)
            action.Add("auto_host_rewrite", true);
        if (route.Timeout is { } timeout)
            action.Add("timeout", Yaml.Duration(timeout));
        if (route.Retries is { } retries)
        {
            action.Add("retry_policy", Yaml.Map(
                ("retry_on", string.Join(',', retries.On)),
                ("num_retries", retries.Attempts),
                ("per_try_timeout", retries.PerTryTimeout is { } p ? Yaml.Duration(p) : null)));
        }
        var rateLimits = Descriptors.For(config, route).Select(d => (object)Yaml.Map(("actions", d.Entries.Select(Action).ToList()))).ToList();
        if (rateLimits.Count > 0)
            action.Add("rate_limits", rateLimits);

        var perFilter = Yaml.Map();
        if (route.Cors is { } cors)
            perFilter.Add(CorsFilter, Cors(cors));
        perFilter.Add(ExtAuthzFilter, AuthzPerRoute(route.Auth, route.Tenant));
        var (requestAdd, requestRemove) = HeaderEdits(route.RequestHeaders);
        var (responseAdd, responseRemove) = HeaderEdits(route.ResponseHeaders);
        return Yaml.Map(("name", route.Name), ("match", match), ("route", action),
            ("request_headers_to_add", requestAdd), ("request_headers_to_remove", requestRemove),
            ("response_headers_to_add", responseAdd), ("response_headers_to_remove", responseRemove),
            ("typed_per_filter_config", perFilter));
    }

    /// <summary>
    /// A route's header edits: set as <c>OVERWRITE_IF_EXISTS_OR_ADD</c>, add as <c>APPEND_IF_EXISTS_OR_ADD</c> (null
    /// lists are left out). Values are literal: Envoy reads <c>%…%</c> in them as its command operators (request
    /// headers, addresses, metadata) and refuses an unmatched <c>%</c>, so each <c>%</c> is written <c>%%</c>.
    /// </summary>
    private static (List<object>? Add, List<object>? Remove) HeaderEdits(HeaderEdits? edits)
    {
        if (edits is null)
            return (null, null);
        var add = edits.Set.Select(h => (h, "OVERWRITE_IF_EXISTS_OR_ADD")).Concat(edits.Add.Select(h => (h, "APPEND_IF_EXISTS_OR_ADD")))
            .Select(e => (object)Yaml.Map(
                ("header", Yaml.Map(("key", e.h.Key), ("value", e.h.Value.Replace("%", "%%", StringComparison.Ordinal)))),
                ("append_action", e.Item2)))
            .ToList();
        return (add.Count == 0 ? null : add, edits.Remove.Count == 0 ? null : edits.Remove.Select(r => (object)r).ToList());
    }

    /// <summary>
    /// The identity headers a client sent are removed as the request arrives, before routing and every filter: only
    /// authz's answer can then put them back. This covers each way a request reaches a backend without that answer —
    /// a route with ext_authz disabled (<c>auth: none</c>), and authz failing while <c>failure_mode: allow</c> lets the
    /// request through — which a route's <c>request_headers_to_remove</c> could not: the router applies those after
    /// ext_authz, so they would also drop what authz set.
    /// </summary>
    private static Node IdentityHeaderRemoval(GatewayConfig config) => Yaml.Map(
        ("name", "envoy.http.early_header_mutation.header_mutation"),
        ("typed_config", Yaml.Map(
            ("@type", "type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation"),
            ("mutations", IdentityHeaderNames(config).Select(name => (object)Yaml.Map(("remove", name))).ToList()))));

    /// <summary>
    /// The headers authz sets or removes on every allow: tenant, subject, client and each claim mapping's, as authz
    /// reads <c>identity_headers</c> (its defaults for names left out), in that order. A malformed entry is skipped:
    /// authz's own loader refuses it in the self-check before anything is written.
    /// </summary>
    public static IReadOnlyList<string> IdentityHeaderNames(GatewayConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var d = IdentityHeaders.Default;
        var node = config.IdentityHeaders;
        var names = new List<string> { Name(node, "tenant") ?? d.Tenant, Name(node, "subject") ?? d.Subject, Name(node, "client") ?? d.Client };
        if (node is not null && Field(node, "claims") is YamlMappingNode claims)
            names.AddRange(claims.Children.Values.OfType<YamlScalarNode>().Where(v => !IsNull(v)).Select(v => v.Value!));
        return names.Distinct(StringComparer.Ordinal).ToList();

        static string? Name(YamlMappingNode? node, string field)
            => node is not null && Field(node, field) is YamlScalarNode scalar && !IsNull(scalar) ? scalar.Value : null;
    }

    private static Node Action(DescriptorEntry entry) => entry.Source switch
    {
        EntrySource.Fixed => Yaml.Map(("generic_key", Yaml.Map(("descriptor_key", entry.Key), ("descriptor_value", entry.Value)))),
        EntrySource.RemoteAddress => Yaml.Map(("remote_address", Yaml.Map())),
        _ => Yaml.Map(("metadata", Yaml.Map(
            ("descriptor_key", entry.Key),
            ("metadata_key", Yaml.Map(
                ("key", ExtAuthzFilter),
                ("path", new List<object> { Yaml.Map(("key", entry.Source switch { EntrySource.Tenant => "tenant", EntrySource.Plan => "plan", _ => "client" })) }))),
            // authz always sets plan (default when nothing names one); should it ever be missing, the descriptor still
            // goes out with the default plan's quota instead of being skipped, which would leave the client unlimited.
            ("default_value", entry.Source == EntrySource.Plan ? Descriptors.NoPlan : null),
            ("source", "DYNAMIC")))),
    };

    private static Node Cors(CorsConfig cors) => Yaml.Map(
        ("@type", "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"),
        ("allow_origin_string_match", cors.Origins.Select(o => (object)(o == "*" ? Yaml.Map(("safe_regex", Yaml.Map(("regex", ".*")))) : Yaml.Map(("exact", o)))).ToList()),
        ("allow_methods", cors.Methods.Count == 0 ? null : string.Join(',', cors.Methods)),
        ("allow_headers", cors.Headers.Count == 0 ? null : string.Join(',', cors.Headers)),
        ("expose_headers", cors.ExposeHeaders.Count == 0 ? null : string.Join(',', cors.ExposeHeaders)),
        ("max_age", cors.MaxAge is { } age ? ((long)age.TotalSeconds).ToString(CultureInfo.InvariantCulture) : null),
        ("allow_credentials", cors.Credentials ? true : null));
}

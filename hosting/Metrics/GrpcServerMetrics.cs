using System.Collections.Concurrent;
using System.Diagnostics;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Prometheus;

namespace Legate.Hosting.Metrics;

/// <summary>
/// Counts and times every gRPC call with the series names dashboards know from go-grpc-prometheus
/// (<c>grpc_server_handled_total</c>, <c>grpc_server_handling_seconds</c>, <c>grpc_server_started_total</c>).
/// A unary call that completes synchronously is recorded without an async state machine.
/// </summary>
internal sealed class GrpcServerMetrics : Interceptor
{
    private static readonly string[] MethodLabels = ["grpc_service", "grpc_method", "grpc_type"];
    private static readonly string[] HandledLabels = ["grpc_service", "grpc_method", "grpc_type", "grpc_code"];
    private static readonly double[] LatencyBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
    private static readonly int CodeCount = Enum.GetValues<StatusCode>().Max(c => (int)c) + 1;

    private readonly Counter _started;
    private readonly Counter _handled;
    private readonly Histogram _latency;
    private readonly ConcurrentDictionary<string, MethodSeries> _byMethod = new(StringComparer.Ordinal);

    public GrpcServerMetrics(IMetricFactory factory)
    {
        _started = factory.CreateCounter("grpc_server_started_total", "gRPC calls started on the server.", MethodLabels);
        _handled = factory.CreateCounter("grpc_server_handled_total", "gRPC calls completed on the server, by status code.", HandledLabels);
        _latency = factory.CreateHistogram("grpc_server_handling_seconds", "Time from a gRPC call's start to its status, in seconds.",
            MethodLabels, new HistogramConfiguration { Buckets = LatencyBuckets });
    }

    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        var series = For(context.Method, "unary");
        var start = series.Start();
        Task<TResponse> call;
        try
        {
            call = continuation(request, context);
        }
        catch (Exception e)
        {
            series.Done(start, CodeOf(e));
            throw;
        }
        if (call.IsCompletedSuccessfully)
        {
            series.Done(start, context.Status.StatusCode);
            return call;
        }
        return AwaitUnary(call, series, start, context);
    }

    // Streams live long: a closure per call costs nothing next to them.
    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation) =>
        Observe(For(context.Method, "client_stream"), context, () => continuation(requestStream, context));

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(
        TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation) =>
        Observe(For(context.Method, "server_stream"), context, async () =>
        {
            await continuation(request, responseStream, context);
            return true;
        });

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation) =>
        Observe(For(context.Method, "bidi_stream"), context, async () =>
        {
            await continuation(requestStream, responseStream, context);
            return true;
        });

    private static async Task<TResponse> AwaitUnary<TResponse>(Task<TResponse> call, MethodSeries series, long start, ServerCallContext context)
    {
        try
        {
            var response = await call;
            series.Done(start, context.Status.StatusCode);
            return response;
        }
        catch (Exception e)
        {
            series.Done(start, CodeOf(e));
            throw;
        }
    }

    private static Task<TResponse> Observe<TResponse>(MethodSeries series, ServerCallContext context, Func<Task<TResponse>> call)
    {
        var start = series.Start();
        Task<TResponse> task;
        try
        {
            task = call();
        }
        catch (Exception e)
        {
            series.Done(start, CodeOf(e));
            throw;
        }
        return AwaitUnary(task, series, start, context);
    }

    private static StatusCode CodeOf(Exception e) => e switch
    {
        RpcException rpc => rpc.StatusCode,
        OperationCanceledException => StatusCode.Cancelled,
        _ => StatusCode.Unknown,
    };

    private MethodSeries For(string method, string type) =>
        _byMethod.TryGetValue(method, out var series) ? series : _byMethod.GetOrAdd(method, m => new MethodSeries(this, m, type));

    /// <summary>The label children of one method, looked up once so a call touches no label dictionary.</summary>
    private sealed class MethodSeries
    {
        private readonly Counter.Child _started;
        private readonly Histogram.Child _latency;
        private readonly Counter.Child?[] _handled = new Counter.Child?[CodeCount];
        private readonly GrpcServerMetrics _owner;
        private readonly string _service;
        private readonly string _method;
        private readonly string _type;

        public MethodSeries(GrpcServerMetrics owner, string fullMethod, string type)
        {
            // "/package.Service/Method"
            var slash = fullMethod.LastIndexOf('/');
            _service = slash > 0 ? fullMethod[1..slash] : fullMethod;
            _method = slash > 0 ? fullMethod[(slash + 1)..] : fullMethod;
            _type = type;
            _owner = owner;
            _started = owner._started.WithLabels(_service, _method, _type);
            _latency = owner._latency.WithLabels(_service, _method, _type);
        }

        public long Start()
        {
            _started.Inc();
            return Stopwatch.GetTimestamp();
        }

        public void Done(long start, StatusCode code)
        {
            _latency.Observe(Stopwatch.GetElapsedTime(start).TotalSeconds);
            var index = (int)code;
            if ((uint)index >= (uint)_handled.Length)
                index = (int)StatusCode.Unknown;
            var child = _handled[index] ??= _owner._handled.WithLabels(_service, _method, _type, ((StatusCode)index).ToString());
            child.Inc();
        }
    }
}

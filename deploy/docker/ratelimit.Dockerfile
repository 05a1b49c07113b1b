# legate-ratelimit: Envoy rate limit service (RLS v3), envoyproxy/ratelimit-compatible.
# Build from the repository root:  docker build -f deploy/docker/ratelimit.Dockerfile -t legate/ratelimit:dev .
#
# Ports:   9002 gRPC (h2c, or TLS with Legate__GrpcTls__*): the Envoy API, grpc.health.v1, reflection
#          9012 HTTP: /metrics, /healthz, /readyz
# Config:  /app/appsettings.json, then Legate__* environment variables (Legate__GrpcPort, Legate__Redis__Configuration, ...).
# Rules:   the config directory named by Legate__Rules__ratelimit__Path (default: the sample rules/ in /app);
#          docker-compose and the Helm chart mount the rendered one at /etc/legate/ratelimit.
#          Shared counters: Legate__RateLimit__Store=redis and Legate__Redis__Configuration=redis:6379.
# The image runs as the base image's non-root user (UID 1654) and writes nothing to its filesystem.

FROM mcr.microsoft.com/dotnet/sdk:10.0.401-noble AS build
WORKDIR /src
COPY global.json Directory.Build.props Directory.Packages.props .editorconfig ./
# Project files first, so the restore layer is reused while only sources change.
COPY protos/Legate.Protos.csproj protos/
COPY hosting/Legate.Hosting.csproj hosting/
COPY ratelimit/Legate.RateLimit.csproj ratelimit/
RUN dotnet restore ratelimit/Legate.RateLimit.csproj
COPY protos/ protos/
COPY hosting/ hosting/
COPY ratelimit/ ratelimit/
RUN dotnet publish ratelimit/Legate.RateLimit.csproj -c Release --no-restore -o /app

FROM mcr.microsoft.com/dotnet/aspnet:10.0.12-noble-chiseled
WORKDIR /app
COPY --from=build /app ./
# Kestrel listens where Legate's own settings say; the base image's default port would only log a warning.
ENV ASPNETCORE_HTTP_PORTS=""
USER 1654
EXPOSE 9002 9012
# No curl in a chiseled image: the service's own --healthcheck mode asks /readyz on Legate:HttpPort.
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 CMD ["dotnet", "/app/legate-ratelimit.dll", "--healthcheck"]
ENTRYPOINT ["dotnet", "/app/legate-ratelimit.dll"]

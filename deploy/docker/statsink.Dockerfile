# legate-statsink: Envoy metrics service (v3) sink; serves Envoy's stats to Prometheus on /metrics.
# Build from the repository root:  docker build -f deploy/docker/statsink.Dockerfile -t legate/statsink:dev .
#
# Ports:   9003 gRPC (h2c, or TLS with Legate__GrpcTls__*): the Envoy API, grpc.health.v1, reflection
#          9013 HTTP: /metrics, /healthz, /readyz
# Config:  /app/appsettings.json, then Legate__* environment variables (Legate__GrpcPort, Legate__Redis__Configuration, ...).
# Rules:   none; Envoy streams its stats to port 9003 and Prometheus scrapes /metrics on 9013.
# The image runs as the base image's non-root user (UID 1654) and writes nothing to its filesystem.

FROM mcr.microsoft.com/dotnet/sdk:10.0.401-noble AS build
WORKDIR /src
COPY global.json Directory.Build.props Directory.Packages.props .editorconfig ./
# Project files first, so the restore layer is reused while only sources change.
COPY protos/Legate.Protos.csproj protos/
COPY hosting/Legate.Hosting.csproj hosting/
COPY statsink/Legate.StatSink.csproj statsink/
RUN dotnet restore statsink/Legate.StatSink.csproj
COPY protos/ protos/
COPY hosting/ hosting/
COPY statsink/ statsink/
RUN dotnet publish statsink/Legate.StatSink.csproj -c Release --no-restore -o /app

FROM mcr.microsoft.com/dotnet/aspnet:10.0.12-noble-chiseled
WORKDIR /app
COPY --from=build /app ./
# Kestrel listens where Legate's own settings say; the base image's default port would only log a warning.
ENV ASPNETCORE_HTTP_PORTS=""
USER 1654
EXPOSE 9003 9013
# No curl in a chiseled image: the service's own --healthcheck mode asks /readyz on Legate:HttpPort.
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 CMD ["dotnet", "/app/legate-statsink.dll", "--healthcheck"]
ENTRYPOINT ["dotnet", "/app/legate-statsink.dll"]

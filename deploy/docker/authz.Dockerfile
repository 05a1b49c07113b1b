# legate-authz: Envoy external authorization (ext_authz v3).
# Build from the repository root:  docker build -f deploy/docker/authz.Dockerfile -t legate/authz:dev .
#
# Ports:   9001 gRPC (h2c, or TLS with Legate__GrpcTls__*): the Envoy API, grpc.health.v1, reflection
#          9011 HTTP: /metrics, /healthz, /readyz
# Config:  /app/appsettings.json, then Legate__* environment variables (Legate__GrpcPort, Legate__Redis__Configuration, ...).
# Rules:   the policy file named by Legate__Rules__authz__Path (default: the sample rules/policies.yaml in /app);
#          docker-compose and the Helm chart mount the rendered one at /etc/legate/authz/policies.yaml.
# The image runs as the base image's non-root user (UID 1654) and writes nothing to its filesystem.

FROM mcr.microsoft.com/dotnet/sdk:10.0.401-noble AS build
WORKDIR /src
COPY global.json Directory.Build.props Directory.Packages.props .editorconfig ./
# Project files first, so the restore layer is reused while only sources change.
COPY protos/Legate.Protos.csproj protos/
COPY hosting/Legate.Hosting.csproj hosting/
COPY authz/Legate.Authz.csproj authz/
RUN dotnet restore authz/Legate.Authz.csproj
COPY protos/ protos/
COPY hosting/ hosting/
COPY authz/ authz/
RUN dotnet publish authz/Legate.Authz.csproj -c Release --no-restore -o /app

FROM mcr.microsoft.com/dotnet/aspnet:10.0.12-noble-chiseled
WORKDIR /app
COPY --from=build /app ./
# Kestrel listens where Legate's own settings say; the base image's default port would only log a warning.
ENV ASPNETCORE_HTTP_PORTS=""
USER 1654
EXPOSE 9001 9011
# No curl in a chiseled image: the service's own --healthcheck mode asks /readyz on Legate:HttpPort.
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 CMD ["dotnet", "/app/legate-authz.dll", "--healthcheck"]
ENTRYPOINT ["dotnet", "/app/legate-authz.dll"]

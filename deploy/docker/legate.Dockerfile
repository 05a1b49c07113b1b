# legate: the config generator CLI. One gateway file in; Envoy's and the services' configuration out.
# Build from the repository root:  docker build -f deploy/docker/legate.Dockerfile -t legate/legate:dev .
# Run:    docker run --rm -v "$PWD/deploy/examples:/in:ro" -v legate-config:/out legate/legate:dev render /in/gateway.yaml -o /out
#
# A one-shot command, not a server: no ports, no HEALTHCHECK. /out is owned by the image's non-root user (UID 1654),
# so an empty named volume mounted there is writable; docker-compose's `render` service uses it that way.

FROM mcr.microsoft.com/dotnet/sdk:10.0.401-noble AS build
WORKDIR /src
# The whole source (less what .dockerignore leaves out): the generator shares config models with the services.
COPY . .
# legate references the authz and ratelimit projects (render checks its output with their loaders), so both of their
# appsettings.json would land in /app; the CLI reads neither, so which one stays does not matter.
RUN dotnet publish gateway/Legate.Gateway.csproj -c Release -o /app -p:ErrorOnDuplicatePublishOutputFiles=false \
 && mkdir -p /out

FROM mcr.microsoft.com/dotnet/aspnet:10.0.12-noble-chiseled
WORKDIR /app
COPY --from=build /app ./
COPY --from=build --chown=1654:1654 /out /out
USER 1654
ENTRYPOINT ["dotnet", "/app/legate.dll"]
CMD ["help"]

# allauthgo-gateway: a static binary on distroless, as a non-root user.
#   docker build -t allauthgo-gateway .
#   docker run -e ALLAUTH_URL=http://django:8000 -e ADDR=:4180 -p 4180:4180 allauthgo-gateway
# NOT BUILT HERE: the machine this was written on has no Docker and no
# registry access. The same build (CGO_ENABLED=0 go build) is what the tests
# run.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/allauthgo-gateway ./cmd/allauthgo-gateway

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/allauthgo-gateway /allauthgo-gateway
USER nonroot:nonroot
# Inside a container the gateway must listen beyond loopback; publish the
# port only to the proxy's network, never to the internet.
ENV ADDR=:4180
EXPOSE 4180
ENTRYPOINT ["/allauthgo-gateway"]

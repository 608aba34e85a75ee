// Package ext holds the extension points of Traefik's dynamic configuration. Upstream keeps it as
// a nested module (pkg/config/dynamic/ext) that the module zip of Traefik leaves out and the Go
// proxy does not serve; its open-source content is these empty structs, embedded in
// dynamic.HTTPConfiguration and dynamic.Router.
package ext

// HTTP extends dynamic.HTTPConfiguration.
type HTTP struct{}

// Router extends dynamic.Router.
type Router struct{}

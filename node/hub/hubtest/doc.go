// Package hubtest runs an in-memory HuggingFace Hub for tests, the way
// net/http/httptest runs an HTTP server: a Server answers the endpoints
// package hub uses, shaped like huggingface.co's replies, with LFS bytes on a
// second host (the CDN) as on the real Hub.
//
// Give Server.URL to hub.WithEndpoint. Seed commits files, File and Tags read
// back what the Hub holds, Count and Log show the requests it saw, and
// SetToken, Corrupt, FailNext and AddListing make it misbehave the ways the
// real Hub can. Repos are always "org/name"; files of 10 MiB or more and
// *.safetensors go through LFS, as on the Hub.
//
// The package does not import package hub, so hub's own tests can use it.
package hubtest

package allauth

// Of returns the client inside v, a *headless.Authenticator, for this
// module's tests and tools; package headless sets it. The client's type is
// internal, so reaching it is no method of the Authenticator's.
var Of func(v any) *Client

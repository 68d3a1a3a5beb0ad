// The pages' icon (served at /favicon.svg and /favicon.ico, linked from every page): three dots
// of a flock in the dashboard's accent colours, so no page logs a 404 for it.

export const FAVICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#0f1626"/><circle cx="10" cy="20" r="4" fill="#5b9dff"/><circle cx="17" cy="11" r="4" fill="#3ecf8e"/><circle cx="24" cy="21" r="4" fill="#f5b942"/></svg>
`;

"""HTTP views: parse the request, call a query or an action, serialize the answer."""

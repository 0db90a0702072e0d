"""The web service: the caseworker's desk in the browser, a front end over the services' APIs."""

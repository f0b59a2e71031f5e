"""Administration pages that gather several packages (layer 7, above ``lti``): the admin
home (platforms, jobs, people) and a person's page (identities, roles, launches, attempts,
scores, completions). Changes go through each package's own services."""

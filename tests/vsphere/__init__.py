"""vSphere API tests against the vcsim simulator (see deploy/vcsim)."""

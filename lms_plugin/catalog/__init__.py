"""Clinical systems, training modules, their immutable versions, lessons and question pools."""

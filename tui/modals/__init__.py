"""Dialogs over a screen: new backup form, confirmation, help."""

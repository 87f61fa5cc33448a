"""User-facing errors: raised for bad input (paths, config keys, values), printed as one line."""


class UserInputError(Exception):
    """A mistake in user input (a path, a config key, a value).

    Command-line entry points catch it and print ``error: <message>`` without a traceback;
    the message must name the file, key or value at fault.
    """

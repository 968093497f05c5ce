package dev.guardsdk.core;

/**
 * Every refusal of the core: a bundle that is missing, changed or malformed, a tokenizer it cannot run, or
 * bad input. {@link #reason()} says which, so an app can word its message and a test can assert it.
 */
public final class GuardException extends Exception {
  private static final long serialVersionUID = 1L;

  /** What went wrong; the Python runtime's error class of the same case is named beside each. */
  public enum Reason {
    /** guard.json missing or malformed, or a file entry escapes the bundle (ManifestError). */
    MANIFEST,
    /** guard.json has a schema_version this reader does not know (SchemaVersionError). */
    SCHEMA_VERSION,
    /** A file the manifest lists is not there (ArtifactMissingError). */
    ARTIFACT_MISSING,
    /** A file's size or sha256 differs from the manifest (ArtifactChangedError). */
    ARTIFACT_CHANGED,
    /** The bundle has no artifact of the wanted format and precision (UnknownFormatError). */
    NO_ARTIFACT,
    /** tokenizer.json uses a model, normalizer, pre-tokenizer or post-processor the core does not run. */
    UNSUPPORTED_TOKENIZER,
    /** The text given to classify: empty where a prompt is needed, too long, or not valid Unicode (InputError). */
    INPUT,
    /** A policy that is malformed or names a category the bundle does not score (PolicyError). */
    POLICY,
    /** Trusted keys were given and guard.sig is missing, malformed or not theirs (SignatureError). */
    SIGNATURE
  }

  private final Reason reason;

  public GuardException(Reason reason, String message) {
    super(message);
    this.reason = reason;
  }

  public GuardException(Reason reason, String message, Throwable cause) {
    super(message, cause);
    this.reason = reason;
  }

  public Reason reason() {
    return reason;
  }
}

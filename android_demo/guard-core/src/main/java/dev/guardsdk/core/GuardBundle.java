package dev.guardsdk.core;

import java.io.File;

/**
 * A bundle folder opened for one artifact: guard.json read, tokenizer.json and the artifact checked against
 * their sha256 before either is used, the text encoder built. What the app holds to classify.
 */
public final class GuardBundle {
  public final Manifest manifest;
  public final Artifact artifact;
  /** The verified model file, for the runtime to load. */
  public final File modelFile;
  public final TextEncoder encoder;

  private GuardBundle(Manifest manifest, Artifact artifact, File modelFile, TextEncoder encoder) {
    this.manifest = manifest;
    this.artifact = artifact;
    this.modelFile = modelFile;
    this.encoder = encoder;
  }

  /**
   * Opens {@code dir} for the first of {@code precisions} whose {@code format} artifact the folder holds (e.g.
   * executorch, int8): an app carries guard.json whole but one model file. With none there, the first one
   * listed is reported missing; with none listed, the refusal names what the bundle holds.
   */
  public static GuardBundle open(File dir, String format, String... precisions) throws GuardException {
    return openChecked(dir, format, null, precisions);
  }

  /**
   * {@link #open(File, String, String...)} of a signed bundle: one of {@code trustedKeys} must have signed its
   * guard.json (BundleSignature), checked on the very bytes that are parsed. An empty list is refused, as in
   * the Python runtime: a key list that came out empty must not open an unsigned bundle.
   */
  public static GuardBundle open(File dir, String format, java.util.List<java.security.PublicKey> trustedKeys,
      String... precisions) throws GuardException {
    if (trustedKeys == null || trustedKeys.isEmpty()) {
      throw new GuardException(GuardException.Reason.INPUT,
          "trustedKeys is empty: give at least one public key, or open the bundle without keys");
    }
    return openChecked(dir, format, trustedKeys, precisions);
  }

  private static GuardBundle openChecked(File dir, String format, java.util.List<java.security.PublicKey> trustedKeys,
      String... precisions) throws GuardException {
    byte[] bytes = Manifest.bytes(dir);
    if (trustedKeys != null) {
      BundleSignature.verify(dir, bytes, trustedKeys);
    }
    Manifest manifest = Manifest.parse(bytes);
    Artifact listed = null;
    for (String precision : precisions) {
      Artifact a = manifest.find(format, precision);
      if (a != null && new File(dir, a.path).exists()) {
        return open(dir, manifest, a);
      }
      listed = listed != null ? listed : a;
    }
    return open(dir, manifest, listed != null ? listed : manifest.artifact(format, precisions[0]));
  }

  private static GuardBundle open(File dir, Manifest manifest, Artifact artifact) throws GuardException {
    WordPieceTokenizer tokenizer = WordPieceTokenizer.parse(manifest.tokenizer.verifiedBytes(dir));
    File model = artifact.verified(dir);
    return new GuardBundle(manifest, artifact, model, new TextEncoder(tokenizer, manifest));
  }
}

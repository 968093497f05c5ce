package dev.guardsdk.core;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * guard.json, schema version 3, and versions 1 (without categories) and 2 (without views) (docs/bundle.md): what
 * the app needs to tokenize, run and decide.
 */
public final class Manifest {
  public static final int SCHEMA_VERSION = 3;
  public static final String FILE = "guard.json";
  /** A guard.json is a few kB; a larger one is refused before it is read (guard_sdk.bundle.MAX_MANIFEST_BYTES). */
  public static final long MAX_BYTES = 4L << 20;
  // Label names that say which class is which (guard_sdk.labels.LABEL_VALUES).
  private static final java.util.Set<String> SAFE_NAMES =
      new java.util.HashSet<>(java.util.Arrays.asList("0", "safe", "benign", "unharmful", "harmless"));
  private static final java.util.Set<String> UNSAFE_NAMES =
      new java.util.HashSet<>(java.util.Arrays.asList("1", "unsafe", "harmful"));

  public final String name;
  public final List<String> labels;
  public final int unsafeIndex;
  public final double threshold;
  public final int maxLength;
  public final FileEntry tokenizer;
  public final String promptTruncationSide;
  public final int windowOverlap;
  /** Whether a pair whose prompt is cut also scores each other prompt window beside the response's first. */
  public final boolean promptWindows;
  public final int padId;
  public final String padToken;
  /** Model input names in the graph's order: input_ids, attention_mask and, where taken, token_type_ids. */
  public final List<String> inputs;
  public final List<Artifact> artifacts;
  /** The harm categories the model scores, in the manifest's order (none in a version 1 bundle). */
  public final List<Category> categories;
  /** The views of the text scored besides the raw text ({@link TextViews}; none before version 3). */
  public final List<String> views;
  /** The look-alike table of the normalized view: one character to the ASCII one it imitates. */
  public final Map<String, String> fold;

  /** A category: P(category) is the sigmoid of logit {@code index}; a violation at {@code threshold} or above. */
  public static final class Category {
    public final String name;
    public final int index;
    public final double threshold;

    Category(JSONObject c) throws JSONException, GuardException {
      name = string(c, "name");
      index = (int) integer(c, "index", 2, Integer.MAX_VALUE);
      threshold = number(c, "threshold");
    }
  }

  private Manifest(JSONObject m) throws JSONException, GuardException {
    int version = (int) integer(m, "schema_version", 0, Integer.MAX_VALUE);
    if (version < 1 || version > SCHEMA_VERSION) {
      throw new GuardException(GuardException.Reason.SCHEMA_VERSION,
          "guard.json has schema_version " + version + "; this app reads versions 1 to " + SCHEMA_VERSION
              + ": update the app or export the bundle with a matching guard-sdk");
    }
    name = string(m, "name");
    labels = strings(m.getJSONArray("labels"));
    unsafeIndex = (int) integer(m, "unsafe_index", 0, 1);
    threshold = number(m, "threshold");
    maxLength = (int) integer(m, "max_length", 8, Integer.MAX_VALUE);
    tokenizer = new FileEntry(m.getJSONObject("tokenizer"));
    JSONObject text = m.getJSONObject("text");
    String pairs = string(text, "pair_encoding");
    if (!pairs.equals("tokenizer_pair")) {
      throw malformed("text.pair_encoding " + pairs + " is unknown; this app joins pairs as tokenizer_pair");
    }
    promptTruncationSide = string(text, "prompt_truncation_side");
    windowOverlap = (int) integer(text, "window_overlap", 0, Integer.MAX_VALUE);
    Object windowsFlag = text.opt("prompt_windows");
    if (windowsFlag != null && !(windowsFlag instanceof Boolean)) {
      throw malformed("text.prompt_windows must be true or false, got " + windowsFlag);
    }
    promptWindows = Boolean.TRUE.equals(windowsFlag);
    padId = (int) integer(text, "pad_id", 0, Integer.MAX_VALUE);
    padToken = string(text, "pad_token");
    inputs = strings(m.getJSONArray("inputs"));
    List<Artifact> found = new ArrayList<>();
    JSONArray list = m.getJSONArray("artifacts");
    for (int i = 0; i < list.length(); i++) {
      found.add(new Artifact(list.getJSONObject(i)));
    }
    artifacts = Collections.unmodifiableList(found);
    List<Category> heads = new ArrayList<>();
    JSONArray listed = m.optJSONArray("categories");
    if (listed != null && version == 1) {
      throw malformed("categories appear in a schema_version 1 manifest");
    }
    java.util.Set<String> names = new java.util.HashSet<>();
    boolean[] taken = new boolean[listed == null ? 0 : listed.length()];
    for (int i = 0; listed != null && i < listed.length(); i++) {
      Category c = new Category(listed.getJSONObject(i));
      if (!names.add(c.name) || c.index < 2 || c.index >= 2 + taken.length || taken[c.index - 2]) {
        throw malformed("categories must have distinct names and take the logits after the labels' (2, 3, ...)");
      }
      if (!(c.threshold > 0 && c.threshold < 1)) {
        throw malformed("the threshold of category " + c.name + " is outside (0, 1)");
      }
      taken[c.index - 2] = true;
      heads.add(c);
    }
    categories = Collections.unmodifiableList(heads);
    JSONObject declared = m.optJSONObject("views");
    if (declared != null && version < 3) {
      throw malformed("views appear in a schema_version " + version + " manifest");
    }
    List<String> viewNames =
        declared == null ? Collections.<String>emptyList() : strings(declared.getJSONArray("names"));
    for (String view : viewNames) {
      if (!TextViews.NAMES.contains(view)) {
        throw malformed("views.names holds " + view + "; the views are " + String.join(", ", TextViews.NAMES));
      }
    }
    views = viewNames;
    Map<String, String> table = new HashMap<>();
    JSONObject foldJson = declared == null ? null : declared.getJSONObject("fold");
    for (Iterator<String> keys = foldJson == null ? Collections.<String>emptyIterator() : foldJson.keys();
        keys.hasNext(); ) {
      String key = keys.next();
      String value = string(foldJson, key);
      if (key.codePointCount(0, key.length()) != 1 || value.length() != 1 || key.charAt(0) < 128
          || value.charAt(0) >= 128 || !Character.isLetterOrDigit(value.charAt(0))) {
        throw malformed("views.fold maps characters other than ASCII to the ASCII letter or digit they imitate, "
            + "not " + key + " to " + value);
      }
      table.put(key, value);
    }
    fold = Collections.unmodifiableMap(table);
    if (labels.size() != 2) {
      throw malformed("labels must name 2 classes");
    }
    if (!(threshold > 0 && threshold < 1)) {
      throw malformed("threshold " + threshold + " is outside (0, 1): it would flag everything or nothing");
    }
    String unsafeName = labels.get(unsafeIndex).trim().toLowerCase(java.util.Locale.ROOT);
    String otherName = labels.get(1 - unsafeIndex).trim().toLowerCase(java.util.Locale.ROOT);
    for (String label : new String[] {unsafeName, otherName}) {
      if (!SAFE_NAMES.contains(label) && !UNSAFE_NAMES.contains(label)) {
        throw malformed("labels " + labels + " must name one safe and one unsafe class (safe / unsafe, benign /"
            + " harmful, ...), as export writes them");
      }
    }
    if (SAFE_NAMES.contains(unsafeName) || UNSAFE_NAMES.contains(otherName)) {
      throw malformed("unsafe_index " + unsafeIndex + " names the label " + labels.get(unsafeIndex)
          + " unsafe; the guard would be inverted");
    }
    JSONObject source = m.optJSONObject("source");
    Object positions = source == null ? null : source.opt("max_positions");
    if (positions instanceof Integer && maxLength > (Integer) positions) {
      throw malformed("max_length " + maxLength + " exceeds the " + positions + " positions the model has");
    }
    if (!promptTruncationSide.equals("left") && !promptTruncationSide.equals("right")) {
      throw malformed("text.prompt_truncation_side must be left or right, not " + promptTruncationSide);
    }
    if (!inputs.contains("input_ids") || !inputs.contains("attention_mask")) {
      throw malformed("inputs must list input_ids and attention_mask, got " + inputs);
    }
    if (!java.util.Set.of("input_ids", "attention_mask", "token_type_ids").containsAll(inputs)
        || new java.util.HashSet<>(inputs).size() != inputs.size()) {
      throw malformed("inputs must name input_ids, attention_mask and token_type_ids, each once, got " + inputs);
    }
    java.util.Set<String> kinds = new java.util.HashSet<>();
    for (Artifact a : artifacts) {
      if (!kinds.add(a.format + " " + a.precision)) {  // an app asking for that format and precision could get either
        throw malformed("two artifacts share the format and precision " + a.format + " " + a.precision);
      }
    }
  }

  /** Parses guard.json's bytes, refusing any that are not UTF-8 (the Python runtime does) rather than replacing them. */
  public static Manifest parse(byte[] json) throws GuardException {
    try {
      return parse(StandardCharsets.UTF_8.newDecoder().decode(java.nio.ByteBuffer.wrap(json)).toString());
    } catch (java.nio.charset.CharacterCodingException e) {
      throw malformed("not UTF-8 text");
    }
  }

  /** Parses guard.json text; a malformed file or a missing field is a MANIFEST refusal naming the field. */
  public static Manifest parse(String json) throws GuardException {
    try {
      return new Manifest(new JSONObject(json));
    } catch (JSONException | StackOverflowError e) {
      throw malformed(String.valueOf(e.getMessage()));
    }
  }

  /** Reads {@code bundle}/guard.json (BundleFiles: a regular file, no link, at most MAX_BYTES). */
  public static Manifest read(File bundle) throws GuardException {
    return parse(bytes(bundle));
  }

  /** The bytes of {@code bundle}/guard.json, read once: what a signature is checked on and what is parsed. */
  public static byte[] bytes(File bundle) throws GuardException {
    if (!new File(bundle, FILE).exists()) {
      throw new GuardException(GuardException.Reason.MANIFEST, "no guard.json in " + bundle + ": not a guard bundle");
    }
    try {
      return BundleFiles.read(bundle, FILE, -1, MAX_BYTES);
    } catch (GuardException e) {
      throw new GuardException(GuardException.Reason.MANIFEST, e.getMessage(), e);
    }
  }

  /**
   * A JSON integer field in [min, max]: the schema's "integer" (128.0 or "128" are refused, as the Python
   * runtime refuses them), named in the refusal.
   */
  static long integer(JSONObject o, String key, long min, long max) throws JSONException, GuardException {
    Object value = o.get(key);
    if (!(value instanceof Integer || value instanceof Long)) {
      throw malformed(key + " must be an integer, got " + value);
    }
    long n = ((Number) value).longValue();
    if (n < min || n > max) {
      throw malformed(key + " " + n + " is outside [" + min + ", " + max + "]");
    }
    return n;
  }

  /** The artifact of {@code format} and {@code precision}, or null. */
  public Artifact find(String format, String precision) {
    for (Artifact a : artifacts) {
      if (a.format.equals(format) && a.precision.equals(precision)) {
        return a;
      }
    }
    return null;
  }

  /** The artifact of {@code format} and {@code precision}; a refusal lists what the bundle holds. */
  public Artifact artifact(String format, String precision) throws GuardException {
    Artifact found = find(format, precision);
    if (found != null) {
      return found;
    }
    StringBuilder held = new StringBuilder();
    for (Artifact a : artifacts) {
      held.append(held.length() == 0 ? "" : ", ").append(a.path);
    }
    throw new GuardException(GuardException.Reason.NO_ARTIFACT,
        "the bundle has no " + format + " " + precision + " artifact (it holds: " + held
            + "); export one with guard-sdk export --formats " + format + " --precision " + precision);
  }

  private static GuardException malformed(String why) {
    return new GuardException(GuardException.Reason.MANIFEST, "guard.json is malformed: " + why);
  }

  private static List<String> strings(JSONArray array) throws JSONException, GuardException {
    List<String> out = new ArrayList<>();
    for (int i = 0; i < array.length(); i++) {
      Object value = array.get(i);
      if (!(value instanceof String)) {
        throw malformed("a list of names holds " + value + ", not a string");
      }
      out.add((String) value);
    }
    return Collections.unmodifiableList(out);
  }

  /**
   * The string at {@code key}: Android's org.json getString turns a number or a boolean into one, where the
   * Python runtime's schema refuses it.
   */
  static String string(JSONObject o, String key) throws JSONException, GuardException {
    Object value = o.get(key);
    if (!(value instanceof String)) {
      throw malformed(key + " must be a string, got " + value);
    }
    return (String) value;
  }

  /** The number at {@code key}, refusing a string ("0.5"), which org.json's getDouble would parse. */
  static double number(JSONObject o, String key) throws JSONException, GuardException {
    Object value = o.get(key);
    if (!(value instanceof Number)) {
      throw malformed(key + " must be a number, got " + value);
    }
    return ((Number) value).doubleValue();
  }
}

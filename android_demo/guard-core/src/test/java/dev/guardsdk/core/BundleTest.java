package dev.guardsdk.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The checks the app makes before it loads anything, on a private copy of a real bundle (-Dguard.bundle, the
 * embedded default guard): each damage is refused with its own reason and a message that names the file.
 */
class BundleTest {
  @TempDir Path tmp;
  File bundle;

  @BeforeEach
  void copyBundle() throws IOException {
    String source = System.getProperty("guard.bundle");
    assertTrue(source != null && new File(source, Manifest.FILE).isFile(),
        "-Dguard.bundle must name a bundle folder, got " + source);
    bundle = tmp.resolve("bundle").toFile();
    assertTrue(bundle.mkdir());
    for (String name : new String[] {Manifest.FILE, "tokenizer.json", "model.int8.pte"}) {
      Files.copy(new File(source, name).toPath(), new File(bundle, name).toPath(), StandardCopyOption.COPY_ATTRIBUTES);
    }
  }

  private GuardException refusal() {
    return assertThrows(GuardException.class, () -> GuardBundle.open(bundle, "executorch", "int8"));
  }

  private void editManifest(String from, String to) throws IOException {
    File file = new File(bundle, Manifest.FILE);
    String text = new String(Files.readAllBytes(file.toPath()), StandardCharsets.UTF_8);
    assertTrue(text.contains(from), "guard.json has no " + from);
    String edited = text.replaceFirst(java.util.regex.Pattern.quote(from),
        java.util.regex.Matcher.quoteReplacement(to));
    Files.write(file.toPath(), edited.getBytes(StandardCharsets.UTF_8));
  }

  @Test
  void anIntactBundleOpensWithItsThresholdAndBudgets() throws GuardException {
    GuardBundle opened = GuardBundle.open(bundle, "executorch", "int8");
    assertEquals("model.int8.pte", opened.modelFile.getName());
    assertEquals(1, opened.artifact.batch);
    assertTrue(opened.manifest.threshold > 0 && opened.manifest.threshold < 1);
    assertEquals(opened.manifest.maxLength - 2, opened.encoder.singleBudget); // [CLS] ... [SEP]
    assertEquals(opened.manifest.maxLength - 3, opened.encoder.pairBudget); // [CLS] ... [SEP] ... [SEP]
  }

  @Test
  void aViewLongerThanTheInputCapIsReadAsInPython() throws GuardException {
    GuardBundle opened = GuardBundle.open(bundle, "executorch", "int8");
    // 340,009 characters as given; NFKC spells each ligature in three letters: 1,020,009 in the normalized view
    String text = String.join(" ", java.util.Collections.nCopies(10, "\ufb03".repeat(34000)));
    assertTrue(opened.manifest.views.contains("normalized"));
    assertEquals(1, opened.encoder.scoredWindows(text, null).size());  // ten [UNK] words: one window
  }

  @Test
  void aChangedByteOfTheTokenizerIsRefused() throws IOException {
    try (RandomAccessFile f = new RandomAccessFile(new File(bundle, "tokenizer.json"), "rw")) {
      f.seek(100);
      int b = f.read();
      f.seek(100);
      f.write(b ^ 1);
    }
    GuardException e = refusal();
    assertEquals(GuardException.Reason.ARTIFACT_CHANGED, e.reason());
    assertTrue(e.getMessage().contains("tokenizer.json") && e.getMessage().contains("sha256"), e.getMessage());
  }

  @Test
  void aModelCutShortIsRefusedBySize() throws IOException {
    try (RandomAccessFile f = new RandomAccessFile(new File(bundle, "model.int8.pte"), "rw")) {
      f.setLength(f.length() - 1);
    }
    GuardException e = refusal();
    assertEquals(GuardException.Reason.ARTIFACT_CHANGED, e.reason());
    assertTrue(e.getMessage().contains("model.int8.pte"), e.getMessage());
  }

  @Test
  void aMissingModelIsRefused() {
    assertTrue(new File(bundle, "model.int8.pte").delete());
    GuardException e = refusal();
    assertEquals(GuardException.Reason.ARTIFACT_MISSING, e.reason());
    assertTrue(e.getMessage().contains("model.int8.pte"), e.getMessage());
  }

  @Test
  void aMissingManifestIsRefused() {
    assertTrue(new File(bundle, Manifest.FILE).delete());
    assertEquals(GuardException.Reason.MANIFEST, refusal().reason());
  }

  @Test
  void anotherSchemaVersionIsRefused() throws IOException {
    editManifest("\"schema_version\": 3", "\"schema_version\": 4");
    GuardException e = refusal();
    assertEquals(GuardException.Reason.SCHEMA_VERSION, e.reason());
    assertTrue(e.getMessage().contains("schema_version 4"), e.getMessage());
  }

  @Test
  void categoriesInAVersion1ManifestAreRefused() throws IOException {
    editManifest("\"schema_version\": 3", "\"schema_version\": 1");
    assertEquals(GuardException.Reason.MANIFEST, refusal().reason());  // its "categories": [] is not version 1
  }

  @Test
  void aPadIdThatIsNotThePadTokensIsRefused() throws IOException {
    editManifest("\"pad_id\": 0", "\"pad_id\": 5");
    GuardException e = refusal();
    assertEquals(GuardException.Reason.MANIFEST, e.reason());
    assertTrue(e.getMessage().contains("pad_id 5"), e.getMessage());
  }

  @Test
  void aPathWithANulCharacterIsRefusedAsAManifestError() throws IOException {
    editManifest("\"path\": \"tokenizer.json\"", "\"path\": \"tokenizer\\u0000.json\"");
    assertEquals(GuardException.Reason.MANIFEST, refusal().reason());
  }

  @Test
  void aStringWhereGuardJsonHasANumberIsRefused() throws IOException {
    editManifest("\"threshold\": 0.5,", "\"threshold\": \"0.5\",");  // org.json's getDouble would parse it
    GuardException e = refusal();
    assertEquals(GuardException.Reason.MANIFEST, e.reason());
    assertTrue(e.getMessage().contains("threshold must be a number"), e.getMessage());
  }

  @Test
  void anUnknownInputAndTwoArtifactsOfOneFormatAndPrecisionAreRefused() throws IOException {
    editManifest("\"attention_mask\",\n    \"token_type_ids\"", "\"attention_mask\",\n    \"position_ids\"");
    assertTrue(refusal().getMessage().contains("position_ids"));
    editManifest("\"attention_mask\",\n    \"position_ids\"", "\"attention_mask\",\n    \"token_type_ids\"");
    editManifest("\"format\": \"onnx\",\n      \"precision\": \"int8\"",
        "\"format\": \"onnx\",\n      \"precision\": \"fp32\"");
    assertTrue(refusal().getMessage().contains("two artifacts share the format and precision onnx fp32"));
  }

  @Test
  void aGuardJsonThatIsNotUtf8IsRefusedNotRepaired() throws IOException {
    File file = new File(bundle, Manifest.FILE);
    byte[] text = Files.readAllBytes(file.toPath());
    byte[] bad = java.util.Arrays.copyOf(text, text.length + 1);
    bad[bad.length - 1] = (byte) 0xff;  // after the closing brace: JSON would not care, UTF-8 does
    Files.write(file.toPath(), bad);
    GuardException e = refusal();
    assertEquals(GuardException.Reason.MANIFEST, e.reason());
    assertTrue(e.getMessage().contains("not UTF-8"), e.getMessage());
  }

  @Test
  void aPathOutOfTheBundleIsRefused() throws IOException {
    editManifest("\"path\": \"tokenizer.json\"", "\"path\": \"../tokenizer.json\"");
    assertEquals(GuardException.Reason.MANIFEST, refusal().reason());
  }

  @Test
  void truncatedJsonIsAManifestRefusal() throws IOException {
    File file = new File(bundle, Manifest.FILE);
    Files.write(file.toPath(), "{\"schema_version\": 1, \"name\": ".getBytes(StandardCharsets.UTF_8));
    assertEquals(GuardException.Reason.MANIFEST, refusal().reason());
  }

  @Test
  void aMissingArtifactKindNamesWhatTheBundleHolds() {
    GuardException e = assertThrows(GuardException.class, () -> GuardBundle.open(bundle, "executorch", "fp16"));
    assertEquals(GuardException.Reason.NO_ARTIFACT, e.reason());
    assertTrue(e.getMessage().contains("model.int8.pte"), e.getMessage());
  }

  @Test
  void theAppOpensTheModelFileItCarriesAndNamesTheOneMissingWhenNone() throws GuardException {
    GuardBundle opened = GuardBundle.open(bundle, "executorch", "fp32", "int8", "int4");
    assertEquals("int8", opened.artifact.precision); // whatever guard.json lists, int8 is the file carried
    assertTrue(new File(bundle, "model.int8.pte").delete());
    GuardException e = assertThrows(GuardException.class,
        () -> GuardBundle.open(bundle, "executorch", "int8", "int4"));
    assertEquals(GuardException.Reason.ARTIFACT_MISSING, e.reason());
    assertTrue(e.getMessage().contains("model.int8.pte"), e.getMessage());
    e = assertThrows(GuardException.class, () -> GuardBundle.open(bundle, "executorch", "fp16"));
    assertEquals(GuardException.Reason.NO_ARTIFACT, e.reason());
  }

  private void editManifestRegex(String pattern, String to) throws IOException {
    File file = new File(bundle, Manifest.FILE);
    String text = new String(Files.readAllBytes(file.toPath()), StandardCharsets.UTF_8);
    String edited = text.replaceFirst(pattern, to);
    assertTrue(!edited.equals(text), "guard.json has no " + pattern);
    Files.write(file.toPath(), edited.getBytes(StandardCharsets.UTF_8));
  }

  @Test
  void aTokenizerLinkedFromOutsideIsRefusedThoughItsBytesMatch() throws IOException {
    Path outside = tmp.resolve("outside.json");
    Files.move(new File(bundle, "tokenizer.json").toPath(), outside);
    Files.createSymbolicLink(new File(bundle, "tokenizer.json").toPath(), outside);
    GuardException e = refusal();
    assertEquals(GuardException.Reason.MANIFEST, e.reason());
    assertTrue(e.getMessage().contains("symbolic link"), e.getMessage());
  }

  @Test
  void aThresholdThatDisablesTheGuardIsRefused() throws IOException {
    editManifestRegex("\"threshold\": [0-9.eE+-]+", "\"threshold\": 1.0");
    GuardException e = refusal();
    assertEquals(GuardException.Reason.MANIFEST, e.reason());
    assertTrue(e.getMessage().contains("outside (0, 1)"), e.getMessage());
  }

  @Test
  void aMaxLengthWrittenAsAFloatIsRefused() throws IOException {
    editManifestRegex("\"max_length\": ([0-9]+)", "\"max_length\": $1.0");
    GuardException e = refusal();
    assertEquals(GuardException.Reason.MANIFEST, e.reason());
    assertTrue(e.getMessage().contains("max_length must be an integer"), e.getMessage());
  }

  @Test
  void anUnsafeIndexThatInvertsTheGuardIsRefused() throws IOException {
    editManifest("\"unsafe_index\": 1", "\"unsafe_index\": 0");
    GuardException e = refusal();
    assertEquals(GuardException.Reason.MANIFEST, e.reason());
    assertTrue(e.getMessage().contains("inverted"), e.getMessage());
  }

  @Test
  void labelsThatSayNothingAreRefusedSoAnInversionCannotHideBehindThem() throws IOException {
    editManifestRegex("\"safe\",\\s*\"unsafe\"", "\"A\", \"B\"");
    editManifest("\"unsafe_index\": 1", "\"unsafe_index\": 0");
    GuardException e = refusal();
    assertEquals(GuardException.Reason.MANIFEST, e.reason());
    assertTrue(e.getMessage().contains("must name one safe and one unsafe class"), e.getMessage());
  }
}
